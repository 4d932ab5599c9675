"""Training jobs live in ctx.sessions and train in another process (the app never holds the model), flag
under-trained classifiers, order numeric labels by value, and the Fine-tune handlers manage runs with keyed,
translated messages."""

from __future__ import annotations

import math
import os
import time

import pandas as pd
import pytest

from components.finetune_handlers import FinetuneHandlers
from pipelines.errors import InputError
from pipelines.tables import Table
from pipelines.training import launch
from pipelines.training.data import ColumnMapping, prepare
from pipelines.training.job import KIND, TrainingJob
from pipelines.training.results import chance_check
from pipelines.training.settings import TrainSettings, preset

POS = ["great wonderful film", "I loved it", "brilliant and fun", "a delightful story", "superb acting",
       "excellent happy movie", "fantastic and great", "amazing wonderful plot"]
NEG = ["terrible boring film", "I hated it", "awful and dull", "a dreadful story", "horrible acting",
       "worst sad movie", "stupid and awful", "boring terrible plot"]


def sentiment(n: int = 8):
    rows = [{"text": t, "label": "pos"} for t in POS[:n]] + [{"text": t, "label": "neg"} for t in NEG[:n]]
    table = Table(pd.DataFrame(rows), "utf-8", ",")
    return prepare(table, "classification", ColumnMapping("text", "label"))


def settings(**extra) -> TrainSettings:
    values = {"batch_size": 4, "epochs": 1, "max_length": 16, "patience": 0, **extra}
    return TrainSettings.from_dict(values, base=preset("quick"))


def start(ctx, base: str, session: str = "s1", **extra) -> TrainingJob:
    job = TrainingJob(ctx.config, ctx.training_slots, sentiment(), settings(**extra), base, name="t", num_threads=2)
    job.start()
    ctx.sessions.put(session, KIND, job)
    return job


def test_training_runs_in_a_child_process_and_twice_in_one_session(ctx, tiny_root) -> None:
    """The model is trained (and held) by another process: the app never imports it; the child is gone after."""
    base = str(tiny_root / "tiny-bert")
    first = start(ctx, base)
    assert first.wait(timeout=600) and first.snapshot().status == "complete"
    second = start(ctx, base)
    assert second.wait(timeout=600) and second.snapshot().status == "complete"
    assert ctx.sessions.get("s1", KIND) is second  # one job per session and kind, the latest
    for job in (first, second):
        record = launch.read_process(ctx.config.runs_dir / job.run_id)
        assert record["pid"] != os.getpid() and not launch.alive(record)
        assert not hasattr(job, "trainer") and not hasattr(job, "model")  # nothing of the model in the app


def test_a_failed_run_reports_its_error_and_frees_the_lock(ctx) -> None:
    broken = ctx.config.models_dir / "broken-model"  # a folder the app may load from, holding no usable model
    broken.mkdir(parents=True)
    (broken / "config.json").write_text('{"model_type": "bert", "vocab_size": "many"}')
    job = start(ctx, str(broken))
    job.wait(timeout=600)
    state = job.snapshot()
    assert state.status == "failed" and state.error_msg.key == "training.failed", state.log_text()
    assert ctx.training_slots.is_free()
    run = ctx.runs.find(job.run_id)
    assert run.error_key == "training.failed" and "训练失败" in run.error_msg.render("zh-CN")


def test_stop_finds_the_sessions_job(ctx, tiny_root) -> None:
    handlers = FinetuneHandlers(ctx)
    assert handlers.stop("nobody") is None
    job = start(ctx, str(tiny_root / "tiny-bert"), session="s2", epochs=50, eval_every=3)
    deadline = time.monotonic() + 300
    while job.snapshot().step < 2 and job.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handlers.stop("other-session") is None and job.running  # another session's Stop leaves it alone
    shown = handlers.stop("s2", lang="zh-CN")
    assert shown is not None and shown.final and shown.status == "stopped"
    assert "已停止" in shown.progress and "data-status='stopped'" in shown.progress
    assert "已保存" in shown.log  # the log lines in the request's language


def test_chance_check() -> None:
    assert chance_check({"val_loss": 0.69, "accuracy": 0.9}, 2) == {"under_trained": True,
                                                                  "chance_loss": round(math.log(2), 4)}
    assert chance_check({"val_loss": 0.2, "accuracy": 0.55}, 2)["under_trained"]  # guessing accuracy
    assert not chance_check({"val_loss": 0.2, "accuracy": 0.95}, 2)["under_trained"]
    assert chance_check({"val_loss": 1.3, "accuracy": 0.3}, 4)["chance_loss"] == round(math.log(4), 4)
    assert chance_check({}, 2) == {}


def test_an_under_trained_classifier_is_marked_and_explained(ctx, tiny_root) -> None:
    job = start(ctx, str(tiny_root / "tiny-bert"), learning_rate=1e-6)  # barely moves from chance
    job.wait(timeout=600)
    state = job.snapshot()
    assert state.status == "complete", state.error
    metrics = ctx.runs.get(job.run_id).metrics
    assert metrics["under_trained"] is True and metrics["chance_loss"] == pytest.approx(math.log(2), abs=1e-3)
    shown = FinetuneHandlers(ctx).view(job, final=True)
    assert "under-trained" in shown.results and "Balanced" in shown.results
    assert "训练不足" in FinetuneHandlers(ctx).view(job, final=True, lang="zh-CN").results
    assert "under-trained" in FinetuneHandlers(ctx).runs().rows[0][-1]


def test_numeric_labels_get_class_ids_by_value() -> None:
    rows = [{"text": f"row {i}", "label": str(label)} for i, label in enumerate([10, 2, 1, 10, 2, 1])]
    data = prepare(Table(pd.DataFrame(rows), "utf-8", ","), "classification", ColumnMapping("text", "label"))
    assert data.labels == ["1", "2", "10"]  # not "1", "10", "2"
    assert [e["label"] for e in data.examples] == [2, 1, 0, 2, 1, 0]


def test_run_actions_need_a_selection_and_the_newest_run_is_preselected(ctx, tiny_root) -> None:
    handlers = FinetuneHandlers(ctx)
    for action in (handlers.download, handlers.merge, handlers.delete):
        for empty in (None, "", "None"):
            with pytest.raises(InputError) as info:
                action(empty)
            assert info.value.key == "training.pick_run" and "Pick a run first" in str(info.value)
    assert handlers.runs().selected is None
    job = start(ctx, str(tiny_root / "tiny-bert"))
    job.wait(timeout=600)
    runs = handlers.runs("zh-CN")
    assert runs.selected == job.run_id and runs.choices == [job.run_id]
    assert runs.headers[0] == "运行 ID" and "已完成" in runs.rows[0] and "文本分类" in runs.rows[0]
    assert handlers.runs(selected="gone").selected == job.run_id
    message = handlers.delete(job.run_id, "zh-CN")
    assert job.run_id in message and "已删除" in message
    assert handlers.runs().choices == []


def test_settings_errors_are_keyed_and_translated() -> None:
    with pytest.raises(InputError) as info:
        TrainSettings.from_dict({"lora_r": 0})
    assert info.value.key == "training.setting.lora_r" and "LoRA 秩" in info.value.render("zh-CN")
    with pytest.raises(InputError) as info:
        FinetuneHandlers.collect("classification", "minilm-l6", "", "quick", "auto", False, "t", "l", "", "",
                                 8, 16, 0.05, 1e-3, 1, 4, 1, 64, 0.1, 0.0, 0.9, 1, 3)
    assert info.value.key == "training.setting.val_split"


def test_closing_the_browser_session_does_not_stop_a_training_run() -> None:
    """Sessions.end stops a session's batch jobs, but a training run (outlives_session) keeps going."""
    from pipelines.sessions import Sessions, WorkerJob

    class Batch(WorkerJob):
        def work(self) -> None:
            self.stop_event.wait(5)

    sessions, batch = Sessions(), Batch().start()
    training = Batch()
    training.outlives_session = TrainingJob.outlives_session
    training.start()
    sessions.put("s1", "batch:classify", batch)
    sessions.put("s1", "train", training)
    assert sessions.end("s1") == 1
    assert batch.wait(5) and batch.stopped
    assert not training.stopped and training.running
    assert sessions.get("s1", "train") is None  # forgotten by the session, still running
    training.stop()
    assert training.wait(5)
