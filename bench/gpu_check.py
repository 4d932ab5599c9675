"""GPU check of the launched training child: on CUDA, trains the SmolLM2 instruction preset and the MiniLM
classifier for a few steps in bf16 (fp16 where bf16 is unsupported) with 1 GPU and with every visible GPU, through
the same launcher as the app (``TrainingJob`` -> ``torch.distributed.run`` -> ``pipelines.training.child``), and
prints samples/s, tokens/s, peak GPU memory (main process) and the launch overhead. Without CUDA it prints one line
saying so and exits 0.

Run: .venv/bin/python bench/gpu_check.py [steps=8]

A device machine with no copy of the embedded packages (the SmolLM2 GGUF is larger than what travels to it) runs the
same check on models of the same shapes with random weights: here, ``bench/gpu_check.py --export-shapes .gpu``
writes the two models' configs and tokenizers (no weights) into ``.gpu``; there, ``bench/gpu_check.py 8 --shapes
.gpu`` builds the random weights and trains those folders. Speed and memory are those of the real models; the losses
mean nothing.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402

from pipelines.config import AppConfig  # noqa: E402
from pipelines.tables import Table  # noqa: E402
from pipelines.training.data import ColumnMapping, PreparedData, prepare  # noqa: E402
from pipelines.training.hardware import HardwareSettings, list_gpus  # noqa: E402
from pipelines.training.job import TrainingJob  # noqa: E402
from pipelines.training.progress import LOG_FILE  # noqa: E402
from pipelines.training.settings import TrainSettings, preset  # noqa: E402
from pipelines.training.slots import DeviceSlots  # noqa: E402

FILLER = ("the a of and to in that it was for on with as at by this from they we say her she or an will my one all "
          "would there their what so up out if about who get which go me when make can like time no just him know")
WORDS = tuple(FILLER.split(" "))


def classification_data(rows: int = 512) -> PreparedData:
    rng = random.Random(0)
    topics = {"sports": ["goal", "match", "team", "coach", "player", "score"],
              "cooking": ["recipe", "oven", "flour", "sauce", "bake"]}
    records = []
    for i in range(rows):
        label = "sports" if i % 2 else "cooking"
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 60))] + rng.sample(topics[label], 2)
        rng.shuffle(words)
        records.append({"text": " ".join(words), "label": label})
    return prepare(Table(pd.DataFrame(records), "utf-8", ","), "classification", ColumnMapping("text", "label"))


def instruction_data(rows: int = 256) -> PreparedData:
    rng = random.Random(0)
    frame = pd.DataFrame([{"prompt": "Repeat: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))),
                           "response": " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 80)))}
                          for _ in range(rows)])
    return prepare(Table(frame, "utf-8", ","), "causal-lm", ColumnMapping(prompt="prompt", response="response"))


def run(data: PreparedData, base: str, task: str, gpus: list[int], steps: int, roots: list[Path]) -> dict:
    s = preset("quick", task)
    per_step = s.batch_size * s.grad_accum
    epochs = steps * per_step / (len(data.examples) * (1 - s.val_split))
    s = TrainSettings.from_dict({"epochs": round(epochs, 3), "patience": 0, "eval_every": 10_000}, base=s)
    with tempfile.TemporaryDirectory() as folder:
        config = AppConfig(data_dir=Path(folder), cache_dir=AppConfig.from_env().cache_dir, extra_model_roots=roots)
        hardware = HardwareSettings(device="cuda:" + ",".join(map(str, gpus)), processes=len(gpus))
        job = TrainingJob(config, DeviceSlots(), data, s, base, name="gpu-check", hardware=hardware)
        started = time.time()
        job.start()
        job.wait()
        state = job.snapshot()
        if state.status != "complete":
            return {"error": state.error or state.status, "log": state.log_text()[-2000:]}
        log = [json.loads(x) for x in (config.runs_dir / job.run_id / LOG_FILE).read_text().splitlines()]
        first = next(r["time"] for r in log if r["event"] == "step")
        m = state.metrics
        return {"precision": state.precision, "processes": state.world_size, "steps": m["steps_done"],
                "samples_per_s": m["samples_per_s"], "tokens_per_s": m["tokens_per_s"],
                "peak_gpu_mb": m.get("peak_gpu_mb"), "launch_s": round(first - started, 1)}


WEIGHTS = (".safetensors", ".gguf", ".bin", ".pt", ".md")


def export_shapes(folder: Path) -> None:
    """The embedded models' configs and tokenizers, without their weights, into ``folder/<name>``."""
    import shutil

    from pipelines.models.embedded import EMBEDDED, ensure_local_folder

    config = AppConfig.from_env()
    for name in ("smollm2-135m-instruct", "minilm-l6"):
        source, target = ensure_local_folder(EMBEDDED[name], config.cache_dir), folder / name
        target.mkdir(parents=True, exist_ok=True)
        for item in source.iterdir():
            if item.is_file() and not item.name.endswith(WEIGHTS) and not item.name.startswith("."):
                shutil.copyfile(item, target / item.name)
        print(f"{name}: {sorted(p.name for p in target.iterdir())}")


def build_random(folder: Path) -> None:
    """Random weights (seeded) for each exported config in ``folder``, saved as safetensors beside it."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    torch.manual_seed(0)
    for name, cls in (("smollm2-135m-instruct", AutoModelForCausalLM), ("minilm-l6", AutoModel)):
        target = folder / name
        if not (target / "model.safetensors").exists():
            cls.from_config(AutoConfig.from_pretrained(target)).save_pretrained(target)


def main() -> None:
    import torch

    if "--export-shapes" in sys.argv:
        export_shapes(Path(sys.argv[sys.argv.index("--export-shapes") + 1]))
        return
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to check.")
        return
    steps = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 8
    shapes = Path(sys.argv[sys.argv.index("--shapes") + 1]).resolve() if "--shapes" in sys.argv else None
    if shapes is not None:
        build_random(shapes)
        print(f"random weights with the embedded models' shapes, from {shapes} (losses mean nothing)")
    gpus = [g.index for g in list_gpus()] or list(range(torch.cuda.device_count()))
    print(f"{len(gpus)} GPU(s): {[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}, "
          f"bf16 supported: {torch.cuda.is_bf16_supported()}")
    cases = [("smollm2-135m-instruct", "causal-lm", instruction_data()), ("minilm-l6", "classification",
                                                                         classification_data())]
    for base, task, data in cases:
        ref = str(shapes / base) if shapes is not None else base
        for chosen in ([gpus[0]], gpus) if len(gpus) > 1 else ([gpus[0]],):
            result = run(data, ref, task, chosen, steps, roots=[shapes] if shapes is not None else [])
            print(f"{base} {task} on {len(chosen)} GPU(s): {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    main()
