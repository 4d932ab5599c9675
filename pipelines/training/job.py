"""One training run as a :class:`~pipelines.sessions.WorkerJob`: the single-slot lock, the run folder, stop,
errors, a snapshot for the UI; everything the run held is dropped when it ends (complete, stopped or failed)."""

from __future__ import annotations

import copy
import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import AppConfig
from pipelines.errors import BusyError, InputError, WorkbenchError
from pipelines.messages import Msg
from pipelines.sessions import WorkerJob
from pipelines.training.data import PreparedData
from pipelines.training.enums import RunStatus, TrainTask, task_key
from pipelines.training.results import chance_check
from pipelines.training.settings import TrainSettings
from pipelines.training.writer import RunWriter, new_run_id

if TYPE_CHECKING:
    from pipelines.training.trainer import LoraTrainer, TrainEvent

log = logging.getLogger(__name__)
MAX_LOG_LINES = 400
KIND = "train"  # the Sessions kind of a training job
OOM_KEY = "training.oom"
OOM_MESSAGE = str(Msg(OOM_KEY))


@dataclass(frozen=True)
class LogLine:
    """One log line: seconds since the start and a translatable message."""

    seconds: float
    message: Msg

    def render(self, lang: str = "en") -> str:
        elapsed = int(self.seconds)
        return f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {self.message.render(lang)}"


@dataclass
class JobState:
    """What the UI shows; copied out under a lock by :meth:`TrainingJob.snapshot`."""

    run_id: str
    task: str
    status: RunStatus = RunStatus.STARTING
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
    log: list[LogLine] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    error: str = ""  # English (logs, tests)
    error_msg: Msg | None = None
    version: int = 0

    @property
    def finished(self) -> bool:
        return RunStatus.parse(self.status).finished

    def log_text(self, lang: str = "en") -> str:
        return "\n".join(line.render(lang) for line in self.log)


def base_location(reference: str, config: AppConfig) -> str:
    """A loadable folder or hub id for a base-model reference (not a fine-tuned run, not spaCy)."""
    from pipelines.models import refs
    from pipelines.models.embedded import ensure_local_folder

    ref = refs.resolve(reference, config)
    if ref.run is not None:
        raise InputError("training.base_is_run")
    if ref.is_spacy:
        raise InputError("training.base_is_spacy")
    if ref.embedded is not None:
        return str(ensure_local_folder(ref.embedded, Path(config.cache_dir)))
    return ref.location


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Message parameters that JSON can hold (nested messages as their English text)."""
    return {k: (str(v) if isinstance(v, Msg) else v) for k, v in params.items()}


class TrainingJob(WorkerJob):
    """Start with :meth:`start` (raises :class:`BusyError` if another job holds the lock); stop with :meth:`stop`.

    A run outlives the browser session that started it: a reload or a closed tab leaves it training (its run
    folder keeps the log and the result), only Stop ends it early.
    """

    outlives_session = True

    def __init__(
        self, config: AppConfig, lock: threading.Lock, data: PreparedData, settings: TrainSettings,
        base_model: str, name: str = "", num_threads: int | None = None,
    ) -> None:
        super().__init__()
        self.config, self.lock, self.data, self.settings = config, lock, data, settings
        self.base_model, self.name = base_model, name.strip()[:80]
        self.run_id = new_run_id(self.name)
        self.thread_name = f"train-{self.run_id}"
        self.num_threads = num_threads
        self.state = JobState(self.run_id, data.task)
        self._state_lock = threading.Lock()
        self.trainer: LoraTrainer | None = None
        self.location = ""
        self.clock = time.monotonic()
        self._holds_lock = False

    # ---- control --------------------------------------------------------------
    def start(self) -> TrainingJob:
        if not self.lock.acquire(blocking=False):
            raise BusyError("training.busy")
        self._holds_lock = True
        try:
            self.location = base_location(self.base_model, self.config)
            self.writer = RunWriter(self.config.runs_dir, self.run_id, {
                "task": self.data.task, "base_model": self.base_model, "name": self.name or self.run_id,
                "labels": self.data.labels, "settings": self.settings.to_dict(),
                "data": self.data.report.to_dict(),
            })
            super().start()
        except BaseException:
            self._release_lock()
            raise
        return self

    def snapshot(self) -> JobState:
        with self._state_lock:
            return copy.deepcopy(self.state)

    # ---- worker ---------------------------------------------------------------
    def _update(self, **fields: Any) -> None:
        with self._state_lock:
            for key, value in fields.items():
                setattr(self.state, key, value)
            self.state.version += 1

    def _log(self, key: str | Msg, **extra: Any) -> None:
        message = key if isinstance(key, Msg) else Msg(key, extra)
        elapsed = time.monotonic() - self.clock
        with self._state_lock:
            self.state.log = [*self.state.log[-MAX_LOG_LINES:], LogLine(elapsed, message)]
            self.state.version += 1
        self.writer.log({"t": round(elapsed, 2), "event": "log", "message": str(message), "key": message.key,
                         **_plain(dict(message.params))})

    def _on_event(self, event: TrainEvent) -> None:
        if event.kind == "log":
            self._log(event.message or Msg("training.log.empty"))
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
        record = {"t": round(time.monotonic() - self.clock, 2), "event": event.kind, "step": event.step,
                  "epoch": round(event.epoch, 3)}
        if event.kind == "step":
            record.update(loss=event.loss, samples_per_s=round(event.samples_per_s, 2))
            self.writer.log(record)
            return
        m = event.metrics
        if "accuracy" in m:
            self._log("training.log.eval_cls", step=event.step, loss=f"{m['val_loss']:.4f}",
                      accuracy=f"{m['accuracy']:.4f}", f1=f"{m.get('macro_f1', 0):.4f}")
        else:
            self._log("training.log.eval_lm", step=event.step, loss=f"{m['val_loss']:.4f}",
                      ppl=f"{m.get('perplexity', 0):.4f}")

    def work(self) -> None:
        import torch

        from pipelines.models.devices import detect_device
        from pipelines.training.trainer import LoraTrainer, threads_for_training

        try:
            torch.set_num_threads(self.num_threads or threads_for_training())
            device = detect_device(self.config.device)
            self.trainer = LoraTrainer(self.data, self.settings, self.location, device=device,
                                       stop_event=self.stop_event, on_event=self._on_event,
                                       allow_pickle=self.config.allow_pickle_weights)
            self._log("training.log.loading", model=self.base_model, task=Msg(task_key(self.data.task)),
                      device=device.upper(), threads=torch.get_num_threads())
            self.trainer.setup()
            self._update(status=RunStatus.RUNNING, device=device, precision=self.trainer.precision)
            if device == "cuda":
                self._log("training.log.gpu", precision=self.trainer.precision)
            else:
                self._log("training.log.cpu")
            self._finish(self.trainer.train())
        except Exception as exc:  # noqa: BLE001 - the run is marked failed, the app keeps serving
            self._fail(exc)

    def _finish(self, metrics: dict) -> None:
        trainer = self.trainer
        status = RunStatus.STOPPED if trainer.stopped else RunStatus.COMPLETE
        if self.data.task == TrainTask.CLASSIFICATION:
            metrics.update(chance_check(metrics, len(self.data.labels)))
            if metrics.get("under_trained"):
                self._log("training.log.under_trained", loss=f"{metrics['val_loss']:.3f}",
                          chance=f"{metrics['chance_loss']:.3f}")
        self.writer.finish(status, trainer.model, trainer.tokenizer, metrics=metrics, device=trainer.device,
                           precision=trainer.precision)
        self._log("training.log.saved", run_id=self.run_id, status=Msg.of(f"training.status.{status}"))
        self._update(status=status, metrics=metrics)

    def _fail(self, exc: Exception) -> None:
        import torch

        text = str(exc)
        if isinstance(exc, torch.OutOfMemoryError | MemoryError) or "out of memory" in text.lower():
            message = Msg(OOM_KEY)
        elif isinstance(exc, WorkbenchError):
            message = exc.msg
        else:
            log.exception("Training run %s failed", self.run_id)
            first = text.strip().splitlines()[0] if text.strip() else ""
            message = Msg.of("training.failed", kind=type(exc).__name__, detail=first[:300])
        metrics = self.trainer.last_eval if self.trainer else {}
        try:
            self._log(message)
            self.writer.finish(RunStatus.FAILED, error=str(message), error_key=message.key,
                               error_params=_plain(dict(message.params)), metrics=metrics)
        except Exception:  # noqa: BLE001 - never let bookkeeping hide the real error
            log.exception("Could not save the failed run %s", self.run_id)
            self.writer.abandon()
        self._update(status=RunStatus.FAILED, error=str(message), error_msg=message)

    def cleanup(self) -> None:
        """Drop every reference to the model, tokenizer and data; free memory; let the next run start."""
        try:
            if self.trainer is not None:
                self.trainer.release()
            self.trainer = None
            gc.collect()
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        finally:
            self._release_lock()

    def _release_lock(self) -> None:
        if self._holds_lock:
            self._holds_lock = False
            self.lock.release()
