"""TensorBoard event files for a run: train loss and learning rate at every optimizer step, the validation loss
and metrics at every evaluation, under ``<run folder>/tensorboard/`` (``tensorboard --logdir <runs folder>``
shows every run). Written by the training child's main process; a missing ``tensorboard`` package or a write
error never fails a run (the writer then goes quiet)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

SUBDIR = "tensorboard"
# Evaluation metrics written as scalars (``val/<name>``): numbers only, the step/epoch bookkeeping left out.
EVAL_SCALARS = ("val_loss", "accuracy", "macro_f1", "perplexity", "masked_loss")
TRAIN_LOSS, LEARNING_RATE, EPOCH = "train/loss", "train/learning_rate", "train/epoch"


def tag_of(metric: str) -> str:
    """The scalar tag of an evaluation metric: ``val_loss`` -> ``val/loss``, ``accuracy`` -> ``val/accuracy``."""
    return "val/loss" if metric == "val_loss" else f"val/{metric}"


class TensorBoardLog:
    """One run's event writer; every method is a no-op when ``enabled`` is False (other processes)."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.folder = Path(run_dir) / SUBDIR
        self.enabled = enabled
        self._writer: Any = None

    def _open(self) -> Any:
        if self._writer is None and self.enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.folder), flush_secs=10)
            except Exception:  # noqa: BLE001 - tensorboard missing or the folder unwritable: no event files
                self.enabled = False
        return self._writer

    def _scalar(self, tag: str, value: Any, step: int) -> None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        writer = self._open()
        if writer is not None and math.isfinite(number):
            writer.add_scalar(tag, number, step)

    def step(self, step: int, loss: float, learning_rate: float | None = None, epoch: float | None = None) -> None:
        """One optimizer step: the train loss, the learning rate (first parameter group) and the epoch."""
        self._scalar(TRAIN_LOSS, loss, step)
        if learning_rate is not None:
            self._scalar(LEARNING_RATE, learning_rate, step)
        if epoch is not None:
            self._scalar(EPOCH, epoch, step)

    def evaluation(self, metrics: dict[str, Any]) -> None:
        """One evaluation's metrics (``val/loss``, ``val/accuracy``, ...) at its ``step``; flushed at once."""
        step = int(metrics.get("step", 0) or 0)
        for name in EVAL_SCALARS:
            if name in metrics:
                self._scalar(tag_of(name), metrics[name], step)
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
