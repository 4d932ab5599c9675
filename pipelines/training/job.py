"""One training job in a worker thread: the single-slot lock, the run folder, stop, errors, a UI snapshot."""

from __future__ import annotations

import copy
import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipelines.config import AppConfig
from pipelines.errors import BusyError, InputError, WorkbenchError
from pipelines.models import refs
from pipelines.models.devices import detect_device
from pipelines.models.embedded import ensure_local_folder
from pipelines.training.data import PreparedData
from pipelines.training.settings import TrainSettings
from pipelines.training.store import RunWriter, new_run_id
from pipelines.training.trainer import LoraTrainer, TrainEvent, threads_for_training

log = logging.getLogger(__name__)
MAX_LOG_LINES = 400
OOM_MESSAGE = (
    "Out of memory during training: lower the batch size or max length, turn on gradient checkpointing, "
    "or pick a smaller model."
)


@dataclass
class JobState:
    """What the UI shows; copied out under a lock by :meth:`TrainingJob.snapshot`."""

    run_id: str
    task: str
    status: str = "starting"  # starting, running, complete, stopped, failed
    device: str = "cpu"
    precision: str = "float32"
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    samples_per_s: float = 0.0
    tokens_per_s: float = 0.0
    eta_s: float | None = None
    train_curve: list[tuple[int, float]] = field(default_factory=list)
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    error: str = ""
    version: int = 0

    @property
    def finished(self) -> bool:
        return self.status in ("complete", "stopped", "failed")


def base_location(reference: str, config: AppConfig) -> str:
    """A loadable folder or hub id for a base-model reference (not a fine-tuned run, not spaCy)."""
    ref = refs.resolve(reference, config)
    if ref.run is not None:
        raise InputError("Fine-tune a base model, not a fine-tuned run: pick an embedded, local or hub model.")
    if ref.is_spacy:
        raise InputError("spaCy pipelines cannot be fine-tuned here; pick a transformers model.")
    if ref.embedded is not None:
        return str(ensure_local_folder(ref.embedded, Path(config.cache_dir)))
    return ref.location


class TrainingJob:
    """Start with :meth:`start` (raises :class:`BusyError` if another job holds the lock); stop with :meth:`stop`."""

    def __init__(
        self, config: AppConfig, lock: threading.Lock, data: PreparedData, settings: TrainSettings,
        base_model: str, name: str = "", num_threads: int | None = None,
    ) -> None:
        self.config, self.lock, self.data, self.settings = config, lock, data, settings
        self.base_model, self.name = base_model, name.strip()[:80]
        self.run_id = new_run_id(self.name)
        self.num_threads = num_threads
        self.stop_event = threading.Event()
        self.state = JobState(self.run_id, data.task)
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.trainer: LoraTrainer | None = None
        self.started = time.monotonic()

    # ---- control --------------------------------------------------------------
    def start(self) -> TrainingJob:
        if not self.lock.acquire(blocking=False):
            raise BusyError("training is busy: another fine-tuning run is in progress; try again when it ends.")
        try:
            location = base_location(self.base_model, self.config)
            self.writer = RunWriter(self.config.runs_dir, self.run_id, {
                "task": self.data.task, "base_model": self.base_model, "name": self.name or self.run_id,
                "labels": self.data.labels, "settings": self.settings.to_dict(),
                "data": self.data.report.to_dict(),
            })
        except BaseException:
            self.lock.release()
            raise
        self._thread = threading.Thread(target=self._run, args=(location,), name=f"train-{self.run_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the loop to end after the current micro-batch; the run is then saved as ``stopped``."""
        self.stop_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state.finished

    @property
    def running(self) -> bool:
        """True while the worker thread is alive (the lock is released when it ends)."""
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> JobState:
        with self._state_lock:
            return copy.deepcopy(self.state)

    # ---- worker ---------------------------------------------------------------
    def _update(self, **fields: Any) -> None:
        with self._state_lock:
            for key, value in fields.items():
                setattr(self.state, key, value)
            self.state.version += 1

    def _log(self, message: str, **extra: Any) -> None:
        elapsed = time.monotonic() - self.started
        line = f"[{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {message}"
        with self._state_lock:
            self.state.log = [*self.state.log[-MAX_LOG_LINES:], line]
            self.state.version += 1
        self.writer.log({"t": round(elapsed, 2), "event": "log", "message": message, **extra})

    def _on_event(self, event: TrainEvent) -> None:
        if event.kind == "log":
            self._log(event.message)
            return
        with self._state_lock:
            st = self.state
            st.step, st.total_steps, st.epoch = event.step, event.total_steps, event.epoch
            if event.kind == "step":
                st.samples_per_s, st.tokens_per_s, st.eta_s = event.samples_per_s, event.tokens_per_s, event.eta_s
                st.train_curve = [*st.train_curve, (event.step, event.loss)]
            else:
                st.metrics = event.metrics
                st.val_curve = [*st.val_curve, (event.step, event.metrics["val_loss"])]
            st.version += 1
        record = {"t": round(time.monotonic() - self.started, 2), "event": event.kind, "step": event.step,
                  "epoch": round(event.epoch, 3)}
        if event.kind == "step":
            record.update(loss=event.loss, samples_per_s=round(event.samples_per_s, 2))
            self.writer.log(record)
        else:
            m = event.metrics
            summary = ", ".join(f"{k} {m[k]:.4f}" for k in ("val_loss", "accuracy", "macro_f1", "perplexity") if k in m)
            self._log(f"Evaluation at step {event.step}: {summary}", step=event.step)

    def _run(self, location: str) -> None:
        torch.set_num_threads(self.num_threads or threads_for_training())
        device = detect_device(self.config.device)
        trainer = None
        try:
            trainer = LoraTrainer(self.data, self.settings, location, device=device, stop_event=self.stop_event,
                                  on_event=self._on_event, allow_pickle=self.config.allow_pickle_weights)
            self.trainer = trainer
            self._log(f"Loading {self.base_model} for {self.data.task} on {device.upper()} "
                      f"({torch.get_num_threads()} CPU threads).")
            trainer.setup()
            self._update(status="running", device=device, precision=trainer.precision)
            if device == "cuda":
                self._log(f"GPU training with {trainer.precision} autocast.")
            else:
                self._log("CPU training (no GPU found); float32.")
            metrics = trainer.train()
            status = "stopped" if trainer.stopped else "complete"
            self.writer.finish(status, trainer.model, trainer.tokenizer, metrics=metrics, device=device,
                               precision=trainer.precision)
            self._log(f"Run {self.run_id} saved ({status}).")
            self._update(status=status, metrics=metrics)
        except Exception as exc:  # noqa: BLE001 - the run is marked failed, the app keeps serving
            self._fail(exc)
        finally:
            if trainer is not None and self.state.status == "failed":
                trainer.model = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.lock.release()

    def _fail(self, exc: Exception) -> None:
        text = str(exc)
        if isinstance(exc, torch.OutOfMemoryError | MemoryError) or "out of memory" in text.lower():
            message = OOM_MESSAGE
        elif isinstance(exc, WorkbenchError):
            message = text
        else:
            log.exception("Training run %s failed", self.run_id)
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            message = f"Training failed: {type(exc).__name__}: {first[:300]}"
        metrics = self.trainer.last_eval if self.trainer else {}
        try:
            self._log(message)
            self.writer.finish("failed", error=message, metrics=metrics)
        except Exception:  # noqa: BLE001 - never let bookkeeping hide the real error
            log.exception("Could not save the failed run %s", self.run_id)
            self.writer.abandon()
        self._update(status="failed", error=message)
