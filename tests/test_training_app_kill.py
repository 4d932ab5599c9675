"""The app killed while it trains: its training child keeps going and the next start leaves it alone (to re-attach);
once the child is gone too, the next start marks the run failed and resumable, and earlier runs stay intact.

(This replaces tests/test_faults.py's killing test, which pinned the old in-process behaviour: a killed app took
its training with it.)"""

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
from pipelines.training import launch
from pipelines.training.store import INTERRUPTED, RunStore, recover_interrupted

ROOT = Path(__file__).resolve().parent.parent

APP_THAT_TRAINS = textwrap.dedent(
    """
    import sys
    from pipelines.config import AppConfig
    from pipelines.context import AppContext
    from pipelines.tables import Table
    from pipelines.training.data import ColumnMapping, prepare
    from pipelines.training.hardware import HardwareSettings
    from pipelines.training.job import TrainingJob
    from pipelines.training.settings import TrainSettings
    import pandas as pd

    data_dir, cache_dir, base = sys.argv[1:4]
    ctx = AppContext.create(AppConfig(data_dir=data_dir, cache_dir=cache_dir, extra_model_roots=[base]))
    rows = [(f"good great lovely {i}", "pos") if i % 2 else (f"bad awful poor {i}", "neg") for i in range(64)]
    table = Table(frame=pd.DataFrame(rows, columns=["text", "label"]), encoding="utf-8", delimiter=",")
    data = prepare(table, "classification", ColumnMapping("text", "label"))
    settings = TrainSettings(epochs=50, batch_size=4, max_length=16, patience=0)
    job = TrainingJob(ctx.config, ctx.training_slots, data, settings, base, name="doomed", num_threads=1,
                      hardware=HardwareSettings(device="cpu", processes=1)).start()
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


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def test_a_killed_app_leaves_its_child_training_and_the_next_start_reattaches_then_recovers(
    tmp_path: Path, shared_cache_dir: Path, tiny_root: Path
) -> None:
    data_dir = tmp_path / "data"
    config = AppConfig(data_dir=data_dir, cache_dir=shared_cache_dir, extra_model_roots=[tiny_root])
    earlier = _earlier_run(config.runs_dir)
    before = (earlier / "run.json").read_text()
    app = subprocess.Popen(
        [sys.executable, "-c", APP_THAT_TRAINS, str(data_dir), str(shared_cache_dir), str(tiny_root / "tiny-bert")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LMW_TEST_STEP_SECONDS": "0.5"},
    )
    run_id = ""
    tmp = config.runs_dir / ".missing.tmp"
    try:
        run_id = app.stdout.readline().strip()
        assert run_id, "the app did not start a run"
        tmp = config.runs_dir / f".{run_id}.tmp"
        deadline = time.monotonic() + 300
        took_a_step = '"event": "step"'  # an optimizer step: after the step-0 checkpoint (evaluations carry "step" too)
        while time.monotonic() < deadline and took_a_step not in _read(tmp / "log.jsonl"):
            time.sleep(0.2)
        assert took_a_step in _read(tmp / "log.jsonl"), "training never took a step"
        app.send_signal(signal.SIGKILL)
        app.wait(timeout=30)
        assert launch.run_alive(tmp), "the training child died with the app"

        # The next start while the child trains: nothing is marked; the run is not listed until it ends.
        assert recover_interrupted(config.runs_dir) == [] and tmp.is_dir()
        assert [r.id for r in RunStore(config.runs_dir).list(None)] == ["earlier"]
    finally:
        if app.poll() is None:
            app.kill()
        launch.kill(launch.read_process(tmp), tmp)  # now the child dies too
    deadline = time.monotonic() + 60
    while launch.run_alive(tmp) and time.monotonic() < deadline:
        time.sleep(0.2)

    ctx = AppContext.create(config)  # the next start after both are gone
    failed = ctx.runs.find(run_id)
    assert failed.status == "failed" and failed.error == INTERRUPTED and failed.resumable
    assert not failed.adapter_dir.exists()
    assert [r.id for r in ctx.runs.list()] == ["earlier"]
    assert (earlier / "run.json").read_text() == before
    assert (earlier / "adapter" / "adapter_model.safetensors").read_bytes() == b"weights"
    assert not list(config.runs_dir.glob(".*"))
    assert recover_interrupted(config.runs_dir) == []
