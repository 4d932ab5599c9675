"""Every run writes TensorBoard event files under its folder: train loss and learning rate per step, validation
loss and metrics per evaluation, readable by tensorboard's own event reader."""

from __future__ import annotations

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pipelines.tables import Table
from pipelines.training.data import ColumnMapping, prepare
from pipelines.training.job import TrainingJob
from pipelines.training.settings import TrainSettings, preset
from pipelines.training.tensorboard_log import SUBDIR, TensorBoardLog


def scalars(folder) -> dict[str, list]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}


def test_the_writer_records_the_expected_scalar_tags(tmp_path) -> None:
    board = TensorBoardLog(tmp_path)
    for step in (1, 2, 3):
        board.step(step, loss=1.0 / step, learning_rate=1e-3 * step, epoch=step / 3)
    board.evaluation({"step": 3, "epoch": 1.0, "val_loss": 0.5, "accuracy": 0.75, "macro_f1": 0.7, "labels": ["a"]})
    board.close()
    found = scalars(tmp_path / SUBDIR)
    expected = {"train/loss", "train/learning_rate", "train/epoch", "val/loss", "val/accuracy", "val/macro_f1"}
    assert expected == set(found)
    assert [e.step for e in found["train/loss"]] == [1, 2, 3]
    assert found["train/loss"][1].value == pytest.approx(0.5)
    assert found["val/accuracy"][0].step == 3 and found["val/accuracy"][0].value == pytest.approx(0.75)


def test_a_disabled_writer_writes_nothing(tmp_path) -> None:
    board = TensorBoardLog(tmp_path, enabled=False)
    board.step(1, 0.3, 1e-3)
    board.evaluation({"step": 1, "val_loss": 0.3})
    board.close()
    assert not (tmp_path / SUBDIR).exists()


def test_a_training_run_writes_event_files_tensorboard_reads(ctx, tiny_root) -> None:
    pos = ["great wonderful film", "I loved it", "brilliant and fun", "a delightful story", "superb acting",
           "excellent happy movie", "fantastic and great", "amazing wonderful plot"]
    neg = ["terrible boring film", "I hated it", "awful and dull", "a dreadful story", "horrible acting",
           "worst sad movie", "stupid and awful", "boring terrible plot"]
    frame = pd.DataFrame([{"text": t, "label": "pos"} for t in pos] + [{"text": t, "label": "neg"} for t in neg])
    data = prepare(Table(frame, "utf-8", ","), "classification", ColumnMapping("text", "label"))
    settings = TrainSettings.from_dict({"batch_size": 4, "epochs": 2, "max_length": 16, "patience": 0},
                                       base=preset("quick"))
    slots = ctx.training_slots if hasattr(ctx, "training_slots") else ctx.training_lock
    job = TrainingJob(ctx.config, slots, data, settings, str(tiny_root / "tiny-bert"), name="tb", num_threads=2)
    job.start()
    assert job.wait(timeout=600) and job.snapshot().status == "complete"
    found = scalars(ctx.config.runs_dir / job.run_id / SUBDIR)
    assert {"train/loss", "train/learning_rate", "val/loss", "val/accuracy", "val/macro_f1"} <= set(found)
    steps = job.snapshot().metrics["steps_done"]
    assert [e.step for e in found["train/loss"]] == list(range(1, steps + 1))
    assert found["val/loss"][0].step == 0 and found["val/loss"][-1].step == steps  # before training, and at the end
    rates = [e.value for e in found["train/learning_rate"]]
    assert len(rates) == steps and max(rates) > 0 and rates[-1] == 0.0  # warm-up, then linear decay to 0
