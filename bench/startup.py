"""Seconds from `python app.py` to HTTP 200 on `/`, against a bare Gradio app started the same way.

Run: .venv/bin/python bench/startup.py [repeats]
"""

from __future__ import annotations

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


def main() -> None:
    import os

    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
            "LMW_DATA_DIR": data, "LMW_CACHE_DIR": str(AppConfig.from_env().cache_dir),
        }
        bare = [time_start([sys.executable, "-c", BARE], env) for _ in range(repeats)]
        full = [time_start([sys.executable, "app.py"], env) for _ in range(repeats)]
    b, f = statistics.median(bare), statistics.median(full)
    print(f"bare gradio app: median {b:.2f}s  {[round(x, 2) for x in bare]}")
    print(f"LM Workbench:    median {f:.2f}s  {[round(x, 2) for x in full]}")
    print(f"ratio workbench/bare: {f / b:.2f}x  (goal: HTTP 200 within 10 s of launch)")


if __name__ == "__main__":
    main()
