"""The evaluation as a :class:`~pipelines.sessions.WorkerJob` (kind ``evaluate`` in ``ctx.sessions``).

Rows go in chunks, every model scores a chunk before the next one starts, so a Stop keeps the same rows
scored by every model and the comparison stays paired.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from pipelines.errors import WorkbenchError
from pipelines.evaluation.predictors import Predictor
from pipelines.evaluation.spec import EvalData, EvalTask
from pipelines.messages import Msg
from pipelines.sessions import WorkerJob

log = logging.getLogger(__name__)
KIND = "evaluate"
CHUNKS = MappingProxyType({EvalTask.CLASSIFICATION: 64, EvalTask.GENERATION: 16, EvalTask.LANGUAGE_MODELLING: 16})


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on)."""
    seconds = int(max(seconds, 0) + 0.5)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


class EvaluationJob(WorkerJob):
    """Load every model, then score the rows chunk by chunk; ``results[m]`` grows for all models together."""

    thread_name = "evaluate-job"

    def __init__(self, data: EvalData, models: list[str], factory: Callable[[str], Predictor]) -> None:
        super().__init__()
        self.data, self.models, self.factory = data, list(models), factory
        self.results: list[list[dict[str, Any]]] = [[] for _ in self.models]
        self.error: Msg | None = None
        self.phase: Msg = Msg.of("evaluate.phase_loading", model="")
        self.finalize: Callable[[], Any] | None = None  # builds the final outputs (set by the UI)
        self.scoring_started = 0.0  # when the first chunk started (models loaded): the ETA's clock

    def work(self) -> None:
        try:
            self.execute()
        except WorkbenchError as exc:
            self.error = exc.msg
        except Exception as exc:  # noqa: BLE001 - reported to the user; rows done are kept
            log.exception("Evaluation failed")
            self.error = Msg.of("error.unexpected", kind=type(exc).__name__, detail=str(exc)[:200])

    def execute(self) -> None:
        """Load and score in the calling thread; errors propagate (``work`` turns them into ``self.error``)."""
        self._score(self._load())

    def _load(self) -> list[Predictor]:
        predictors = []
        for model in self.models:
            self.phase = Msg.of("evaluate.phase_loading", model=model)
            predictor = self.factory(model)
            if hasattr(predictor, "stop_event"):  # a predictor that sends requests stops sending them on Stop
                predictor.stop_event = self.stop_event
            predictors.append(predictor)
        return predictors

    def _score(self, predictors: list[Predictor]) -> None:
        data, step = self.data, CHUNKS[self.data.task]
        self.scoring_started = time.perf_counter()
        for start in range(0, len(data), step):
            if self.stop_event.is_set():
                return
            inputs = data.inputs[start:start + step]
            targets = data.targets[start:start + step] if data.targets is not None else None
            chunk = []
            for model, predictor in zip(self.models, predictors, strict=True):
                self.phase = Msg.of("evaluate.phase_scoring", model=model)
                out = predictor.predict(inputs, targets)
                if self.stop_event.is_set():
                    return  # a chunk only counts when every model scored all of it
                if len(out) != len(inputs):
                    raise WorkbenchError("batch.result_count", rows=len(inputs), results=len(out))
                chunk.append(out)
            for rows, out in zip(self.results, chunk, strict=True):
                rows.extend(out)

    @property
    def done(self) -> int:
        return min((len(r) for r in self.results), default=0)

    @property
    def total(self) -> int:
        return len(self.data)

    @property
    def state(self) -> str:
        """failed, stopped, done or running."""
        if self.error:
            return "failed"
        if self.stop_event.is_set() and self.done < self.total:
            return "stopped"
        return "done" if self.finished else "running"

    @property
    def rows_per_second(self) -> float:
        elapsed = (self.ended or time.perf_counter()) - self.started
        return self.done / elapsed if self.started and elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the scoring speed so far (None before the first chunk is done or after the end)."""
        if not self.scoring_started or not self.done or self.finished or self.done >= self.total:
            return None
        elapsed = time.perf_counter() - self.scoring_started
        return (self.total - self.done) * elapsed / self.done

    def progress(self) -> Msg:
        """``Scored N of M rows`` and, once a chunk is done, ``about m:ss left``."""
        eta = self.eta_seconds
        if eta is None:
            return Msg.of("evaluate.progress", done=self.done, total=self.total)
        return Msg.of("evaluate.progress_eta", done=self.done, total=self.total, eta=clock(eta))

    def status(self) -> Msg:
        """``N of M rows (state, r rows/s)``, with the error when it failed."""
        line = Msg.of("evaluate.status", done=self.done, total=self.total, state=Msg.of(f"batch.state_{self.state}"),
                      speed=f"{self.rows_per_second:.2f}")
        return Msg.of("batch.status_error", status=line, error=self.error) if self.error else line
