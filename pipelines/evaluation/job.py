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

    def work(self) -> None:
        try:
            self._score(self._load())
        except WorkbenchError as exc:
            self.error = exc.msg
        except Exception as exc:  # noqa: BLE001 - reported to the user; rows done are kept
            log.exception("Evaluation failed")
            self.error = Msg.of("error.unexpected", kind=type(exc).__name__, detail=str(exc)[:200])

    def _load(self) -> list[Predictor]:
        predictors = []
        for model in self.models:
            self.phase = Msg.of("evaluate.phase_loading", model=model)
            predictors.append(self.factory(model))
        return predictors

    def _score(self, predictors: list[Predictor]) -> None:
        data, step = self.data, CHUNKS[self.data.task]
        for start in range(0, len(data), step):
            if self.stop_event.is_set():
                return
            inputs = data.inputs[start:start + step]
            targets = data.targets[start:start + step] if data.targets is not None else None
            chunk = []
            for model, predictor in zip(self.models, predictors, strict=True):
                self.phase = Msg.of("evaluate.phase_scoring", model=model)
                out = predictor.predict(inputs, targets)
                if len(out) != len(inputs):
                    raise WorkbenchError("batch.result_count", rows=len(inputs), results=len(out))
                chunk.append(out)
                if self.stop_event.is_set():
                    return  # a chunk only counts when every model scored it
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

    def status(self) -> Msg:
        """``N of M rows (state, r rows/s)``, with the error when it failed."""
        line = Msg.of("evaluate.status", done=self.done, total=self.total, state=Msg.of(f"batch.state_{self.state}"),
                      speed=f"{self.rows_per_second:.2f}")
        return Msg.of("batch.status_error", status=line, error=self.error) if self.error else line
