"""Faults: a training process killed mid-run leaves earlier runs intact and is marked failed on the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.training.store import INTERRUPTED, RunStore, recover_interrupted

ROOT = Path(__file__).resolve().parent.parent

TRAIN_FOREVER = textwrap.dedent(
    """
    import sys
    from pipelines.config import AppConfig
    from pipelines.context import AppContext
    from pipelines.tables import Table
    from pipelines.training.data import ColumnMapping, prepare
    from pipelines.training.job import TrainingJob
    from pipelines.training.settings import TrainSettings
    import pandas as pd

    data_dir, cache_dir, base = sys.argv[1:4]
    ctx = AppContext.create(AppConfig(data_dir=data_dir, cache_dir=cache_dir, extra_model_roots=[base]))
    rows = [(f"good great lovely {i}", "pos") if i % 2 else (f"bad awful poor {i}", "neg") for i in range(64)]
    table = Table(frame=pd.DataFrame(rows, columns=["text", "label"]), encoding="utf-8", delimiter=",")
    data = prepare(table, "classification", ColumnMapping("text", "label"))
    settings = TrainSettings(epochs=50, batch_size=4, max_length=16)
    job = TrainingJob(ctx.config, ctx.training_lock, data, settings, base, name="doomed").start()
    print(job.run_id, flush=True)
    job.wait()
    """
)


def _earlier_run(runs_dir: Path) -> Path:
    folder = runs_dir / "earlier"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "run.json").write_text(json.dumps({"task": "causal-lm", "base_model": "x", "status": "complete"}))
    return folder


def test_killing_training_keeps_earlier_runs_and_next_start_marks_it_failed(
    tmp_path: Path, shared_cache_dir: Path, tiny_root: Path
) -> None:
    data_dir = tmp_path / "data"
    config = AppConfig(data_dir=data_dir, cache_dir=shared_cache_dir, extra_model_roots=[tiny_root])
    earlier = _earlier_run(config.runs_dir)
    before = (earlier / "run.json").read_text()
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAIN_FOREVER, str(data_dir), str(shared_cache_dir), str(tiny_root / "tiny-bert")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ},
    )
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the training process did not start a run"
        tmp = config.runs_dir / f".{run_id}.tmp"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and '"step"' not in _read(tmp / "log.jsonl"):
            time.sleep(0.2)
        assert '"step"' in _read(tmp / "log.jsonl"), "training never took a step"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    # Before any restart: the killed run is not listed, and nothing of it counts as usable.
    assert [r.id for r in RunStore(config.runs_dir).list(None)] == ["earlier"]

    ctx = AppContext.create(config)  # the next start
    failed = ctx.runs.find(run_id)
    assert failed.status == "failed" and failed.error == INTERRUPTED
    assert not failed.adapter_dir.exists()
    assert [r.id for r in ctx.runs.list()] == ["earlier"]
    assert (earlier / "run.json").read_text() == before
    assert (earlier / "adapter" / "adapter_model.safetensors").read_bytes() == b"weights"
    assert not list(config.runs_dir.glob(".*"))
    assert recover_interrupted(config.runs_dir) == []


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""
