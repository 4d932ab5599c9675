"""Start-up: seconds from `python app.py` to HTTP 200 on `/`, side by side with a bare Gradio app started the same
way (runs interleaved, so both see the same machine load), and which heavy libraries `import app` pulls in.

Run: .venv/bin/python bench/startup.py [repeats] [--loads]
     --loads also times SmolLM2's first load (de-quantising the GGUF file) against a load from the cache.
The last line is ``ratio N`` (median app / median bare; goal <= 1.3).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.config import AppConfig  # noqa: E402
from tests.app_server import ROOT, free_port, wait_for_http  # noqa: E402

BARE = """
import os, gradio as gr
with gr.Blocks() as demo:
    gr.Markdown("hello")
demo.launch(server_name="127.0.0.1", server_port=int(os.environ["GRADIO_SERVER_PORT"]))
"""
HEAVY = ("torch", "transformers", "peft", "spacy", "bertviz", "sklearn", "accelerate")


def time_start(cmd: list[str], env: dict[str, str]) -> float:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**env, "GRADIO_SERVER_PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", proc=proc)
        return time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def heavy_import_chains(env: dict[str, str]) -> dict[str, list[str]]:
    """``{heavy library: [importing module chain, outermost last]}`` for what ``import app`` imports."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=False)
    lines = [line.split("|")[-1] for line in result.stderr.splitlines() if line.startswith("import time:")][1:]
    chains: dict[str, list[str]] = {}
    for index, line in enumerate(lines):
        name = line.strip()
        if name not in HEAVY or name in chains:
            continue
        depth, chain = len(line) - len(line.lstrip()), []
        for later in lines[index + 1:]:  # importtime prints a module after the ones it imported
            indent = len(later) - len(later.lstrip())
            if indent < depth:
                chain.append(later.strip())
                depth = indent
        chains[name] = chain
    return chains


def smollm2_loads() -> tuple[float, float]:
    """(first load from GGUF into an empty cache, load from that cache), each in a fresh process."""
    code = (
        # Library imports are a per-process cost, not a model load: done before the clock starts.
        "import sys, time; from pipelines.config import AppConfig; from pipelines.models import ModelManager; "
        "from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerFast; "
        "m = ModelManager(AppConfig(data_dir=sys.argv[1])); t = time.perf_counter(); "
        "m.load('smollm2-135m-instruct'); print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as data:
        run = [sys.executable, "-c", code, data]
        first, cached = (
            float(subprocess.run(run, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()[-1])
            for _ in range(2)
        )
    return first, cached


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repeats = int(args[0]) if args else 3
    bare: list[float] = []
    full: list[float] = []
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
            "LMW_DATA_DIR": data, "LMW_CACHE_DIR": str(AppConfig.from_env().cache_dir),
        }
        for _ in range(repeats):  # interleaved: a burst of load elsewhere hits both alike
            bare.append(time_start([sys.executable, "-c", BARE], env))
            full.append(time_start([sys.executable, "app.py"], env))
        chains = heavy_import_chains(env)
    for name, chain in chains.items():
        print(f"start-up imports {name}: " + " <- ".join(chain))
    if not chains:
        print("start-up imports none of: " + ", ".join(HEAVY))
    if "--loads" in sys.argv:
        first, cached = smollm2_loads()
        print(f"SmolLM2 first load (de-quantise GGUF + write cache): {first:.2f}s; cached load: {cached:.2f}s; "
              f"ratio {first / cached:.1f}x (goal: at least 10x)")
    b, f = statistics.median(bare), statistics.median(full)
    print(f"bare gradio app: median {b:.2f}s  {[round(x, 2) for x in bare]}")
    print(f"LM Workbench:    median {f:.2f}s  {[round(x, 2) for x in full]}")
    print(f"ratio {f / b:.2f}")


if __name__ == "__main__":
    main()
