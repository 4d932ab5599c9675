"""Training as a launched child process (real torchrun processes, no mocks): two CPU ranks on gloo, a SIGKILL
and Resume, an out-of-memory through the test hook, early stopping, two Stops, re-attaching after an app
restart, and reproducing a run from the shell command its folder holds."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from components.finetune_handlers import FOLLOWED, FinetuneHandlers
from pipelines.context import AppContext
from pipelines.errors import BusyError
from pipelines.tables import Table, read_table
from pipelines.training import launch
from pipelines.training.checkpoints import WEIGHTS, list_checkpoints
from pipelines.training.data import ColumnMapping, prepare
from pipelines.training.hardware import ControlSettings, HardwareSettings
from pipelines.training.job import KIND, TrainingJob
from pipelines.training.loop import TEST_OOM_ENV, TEST_SLOW_ENV
from pipelines.training.settings import TrainSettings, preset
from tests.test_training import NEG, POS

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


@pytest.fixture(autouse=True)
def no_child_left(config):
    """Whatever a test does, no training process outlives it."""
    yield
    for folder in config.runs_dir.glob(".*.tmp") if config.runs_dir.is_dir() else []:
        launch.kill(launch.read_process(folder), folder)


def sentiment(n: int = 20):
    rows = [{"text": t, "label": "pos"} for t in POS[:n]] + [{"text": t, "label": "neg"} for t in NEG[:n]]
    return prepare(Table(pd.DataFrame(rows), "utf-8", ","), "classification", ColumnMapping("text", "label"))


def settings(**extra) -> TrainSettings:
    values = {"epochs": 1, "batch_size": 4, "max_length": 16, "patience": 0, **extra}
    return TrainSettings.from_dict(values, base=preset("quick"))


def job_for(ctx, data, s, base: str, processes: int = 1, name: str = "t") -> TrainingJob:
    return TrainingJob(ctx.config, ctx.training_slots, data, s, base, name=name, num_threads=1,
                       hardware=HardwareSettings(device="cpu", processes=processes))


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text(encoding="utf-8").splitlines()]


def wait_for_step(job: TrainingJob, step: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while job.snapshot().step < step and job.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.snapshot().step >= step, job.snapshot().log_text()


def test_two_cpu_processes_train_minilm_like_one(ctx) -> None:
    """Both gloo ranks run, the loss is logged once per step, the adapter is saved once, accuracy matches."""
    data = prepare(read_table(EXAMPLES / "sentiment.csv"), "classification", ColumnMapping("text", "label"))
    s = settings(epochs=6, learning_rate=2e-3, head_learning_rate=2e-3, max_length=32, val_split=0.25, seed=0,
                 lora_dropout=0.0)  # a smooth run: dropout noise (drawn per process) must not decide the outcome
    results = {}
    for processes in (1, 2):
        job = job_for(ctx, data, s, "minilm-l6", processes, name=f"p{processes}").start()
        assert job.wait(timeout=900)
        state = job.snapshot()
        assert state.status == "complete", state.log_text()
        folder = ctx.config.runs_dir / job.run_id
        log = records(folder)
        assert sorted(r["rank"] for r in log if r["event"] == "rank") == list(range(processes))
        assert [r["world_size"] for r in log if r["event"] == "started"] == [processes]
        steps = [r["step"] for r in log if r["event"] == "step"]
        assert steps == list(range(1, state.total_steps + 1))  # once per step, not once per process
        assert sum(r.get("key") == "training.log.saved" for r in log) == 1
        assert (folder / "adapter" / "adapter_model.safetensors").is_file()
        assert state.world_size == processes and state.ranks == list(range(processes))
        results[processes] = ctx.runs.get(job.run_id).metrics["accuracy"]
    assert abs(results[2] - results[1]) <= 0.05, results


def test_sigkill_mid_run_leaves_the_app_serving_and_resume_finishes_without_a_gap(ctx, tiny_root, monkeypatch):
    monkeypatch.setenv(TEST_SLOW_ENV, "0.3")
    handlers = FinetuneHandlers(ctx)
    job = job_for(ctx, sentiment(), settings(epochs=3, eval_every=2), str(tiny_root / "tiny-bert"))
    handlers._register(job.start(), "s1")
    wait_for_step(job, 5)
    workers = launch.worker_records(job.folder)
    assert len(workers) == 1 and workers[0]["pid"] != os.getpid()
    os.kill(workers[0]["pid"], signal.SIGKILL)  # the training process dies (as by the OOM killer, a segfault)
    assert job.wait(timeout=120)
    state = job.snapshot()
    assert state.status == "failed" and state.resumable, state.log_text()
    run = ctx.runs.find(job.run_id)
    assert run.status == "failed" and run.resumable and run.error_key == "training.crashed_signal"
    assert "SIGKILL" in run.error and "SIGKILL" in state.error
    assert run.log_tail and "failed" in handlers.runs().rows[0][4]
    assert ctx.training_slots.is_free()  # the slot is free again: the app keeps serving

    monkeypatch.delenv(TEST_SLOW_ENV)
    resumed = handlers.resume(job.run_id, "s1")
    shown = list(handlers.follow(resumed))[-1]
    assert shown.status == "complete", resumed.snapshot().log_text()
    final = resumed.snapshot()
    assert [s for s, _ in final.train_curve] == list(range(1, final.total_steps + 1))  # no gap, no repeat
    assert final.step == final.total_steps == ctx.runs.get(job.run_id).metrics["steps_done"]
    assert any(r["event"] == "resumed" for r in records(ctx.config.runs_dir / job.run_id))


def test_out_of_memory_gives_one_clear_message_and_the_app_keeps_serving(ctx, tiny_root, monkeypatch) -> None:
    monkeypatch.setenv(TEST_OOM_ENV, "2")
    job = job_for(ctx, sentiment(4), settings(epochs=3), str(tiny_root / "tiny-bert")).start()
    assert job.wait(timeout=300)
    state = job.snapshot()
    assert state.status == "failed" and state.error_msg.key == "training.oom"
    assert sum("Out of memory" in line.render() for line in state.log) == 1
    run = ctx.runs.find(job.run_id)
    assert run.error_key == "training.oom" and "内存不足" in run.error_msg.render("zh-CN")
    assert run.resumable  # the checkpoint of step 0 (or later) is there
    assert ctx.training_slots.is_free()


def test_early_stopping_stops_a_diverging_run_and_exports_the_best_checkpoint(ctx, tiny_root) -> None:
    from safetensors.torch import load_file

    s = settings(epochs=20, learning_rate=0.1, eval_every=1, patience=2, warmup_ratio=0.0)
    job = job_for(ctx, sentiment(8), s, str(tiny_root / "tiny-bert")).start()
    assert job.wait(timeout=600)
    state = job.snapshot()
    assert state.status == "complete", state.log_text()
    run = ctx.runs.get(job.run_id)
    m = run.metrics
    assert m["early_stopped"] and m["steps_done"] < m["total_steps"]
    losses = dict(state.val_curve)
    assert m["best_step"] == min(losses, key=losses.get) == state.best_step  # the curve marks the best step
    assert m["step"] == m["best_step"] and m["val_loss"] == losses[m["best_step"]]
    best = next(c for c in list_checkpoints(run.path) if int(c.name.split("-")[1]) == m["best_step"])
    expected = load_file(str(best / WEIGHTS))
    loaded = dict(ctx.manager.load(run.reference).model.named_parameters())
    assert expected and all(torch.allclose(loaded[name].detach().float(), tensor.float(), atol=1e-6)
                            for name, tensor in expected.items())
    assert len(list_checkpoints(run.path)) <= ControlSettings().keep_checkpoints + 1  # the last K plus the best


def test_stop_saves_a_checkpoint_and_a_second_stop_kills(ctx, tiny_root, monkeypatch) -> None:
    monkeypatch.setenv(TEST_SLOW_ENV, "1.5")
    job = job_for(ctx, sentiment(), settings(epochs=5, eval_every=50), str(tiny_root / "tiny-bert")).start()
    wait_for_step(job, 1)
    job.stop()
    assert job.wait(timeout=120)
    state = job.snapshot()
    assert state.status == "stopped" and state.step < state.total_steps
    run = ctx.runs.find(job.run_id)
    assert run.resumable and list_checkpoints(run.path)[-1].name == f"step-{state.step:07d}"

    monkeypatch.setenv(TEST_SLOW_ENV, "30")  # each step now lasts longer than the test waits
    job = job_for(ctx, sentiment(), settings(epochs=5), str(tiny_root / "tiny-bert")).start()
    wait_for_step(job, 1, timeout=300)
    job.stop()
    time.sleep(1)
    assert job.running  # the first Stop waits for the step to end
    job.stop()
    assert job.wait(timeout=60)
    state = job.snapshot()
    assert state.status == "failed" and state.error_msg.key == "training.killed"
    assert not launch.alive(launch.read_process(ctx.config.runs_dir / job.run_id))


def test_a_restarted_app_reattaches_to_the_running_child(config, tiny_root, monkeypatch, upload_dir) -> None:
    monkeypatch.setenv(TEST_SLOW_ENV, "0.5")
    first = AppContext.create(config)
    job = job_for(first, sentiment(), settings(epochs=5, eval_every=50), str(tiny_root / "tiny-bert"))
    FinetuneHandlers(first)._register(job.start(), "s1")
    wait_for_step(job, 1)

    second = AppContext.create(config)  # the app restarted: its start-up must not fail the live run
    assert not second.runs.list(None)
    handlers = FinetuneHandlers(second)
    attached = handlers.follow_current("reloaded-page")
    assert attached is not None and attached.run_id == job.run_id and attached.mode == "attach"
    assert second.sessions.get(FOLLOWED, KIND) is attached and second.sessions.get("reloaded-page", KIND) is attached
    seen = attached.snapshot().step
    wait_for_step(attached, seen + 2)
    shown = handlers.view(attached, final=False)
    assert "data-status='running'" in shown.progress and attached.snapshot().train_curve[0][0] == 1
    upload = shutil.copy(EXAMPLES / "sentiment.csv", upload_dir / "sentiment.csv")
    with pytest.raises(BusyError, match="training is busy: run 't'"):
        handlers.start(str(upload), '{"base_model": "minilm-l6"}', "other")
    stopped = handlers.stop("reloaded-page")
    assert stopped is not None and stopped.status == "stopped"
    assert job.wait(timeout=60) and job.snapshot().status == "stopped"


def test_the_run_folder_reproduces_the_run_from_a_shell(ctx, tiny_root, tmp_path) -> None:
    job = job_for(ctx, sentiment(4), settings(), str(tiny_root / "tiny-bert")).start()
    assert job.wait(timeout=300) and job.snapshot().status == "complete"
    folder = ctx.config.runs_dir / job.run_id
    command = next(r for r in records(folder) if r.get("key") == "training.log.command")["params"]["command"]
    assert command in (folder / "reproduce.sh").read_text() and "torch.distributed.run" in command
    assert {"spec.json", "data.json"} <= {p.name for p in folder.iterdir()}
    argv = shlex.split(command.split("PYTHONPATH=. ", 1)[1])
    argv[argv.index("--out") + 1] = str(tmp_path / "again")
    env = {**os.environ, "PYTHONPATH": str(launch.ROOT), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    argv[0] = sys.executable
    done = subprocess.run(argv, cwd=launch.ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    again = json.loads((tmp_path / "again" / "run.json").read_text())
    original = json.loads((folder / "run.json").read_text())
    assert again["status"] == "complete" and again["metrics"]["val_loss"] == pytest.approx(
        original["metrics"]["val_loss"], abs=1e-5)  # same data, seed and order: the same run
