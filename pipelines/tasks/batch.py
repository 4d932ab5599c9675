"""Batch runner for CSV mode: mini-batches in a worker thread with a stop event; rows done are always kept.

A :class:`BatchJob` is a :class:`~pipelines.sessions.WorkerJob`: the tab puts it in ``ctx.sessions`` under
``(session, "batch:<tab>")`` (:func:`batch_kind`), where Stop and the end of the browser session find it.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.columns import guess_column
from pipelines.errors import InputError, WorkbenchError
from pipelines.messages import Msg
from pipelines.sessions import WorkerJob

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.tables import Table

log = logging.getLogger(__name__)
ProcessFn = Callable[[list[str]], list[dict]]
BATCH_KIND = "batch"


def batch_kind(tab: str) -> str:
    """The ``ctx.sessions`` kind of a tab's batch job: ``batch:<tab>``."""
    return f"{BATCH_KIND}:{tab}"


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Row indices grouped into mini-batches of similar length (shortest first), so little padding is computed.

    Callers run each batch and write its results back at these indices, which restores the input order.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    size = max(1, batch_size)
    return [order[start:start + size] for start in range(0, len(order), size)]


def pick_column(table: Table, requested: str | None, role: str = "text", required: bool = True) -> str | None:
    """The requested column, else a column with a usual name, else the first one (when ``required``)."""
    requested = (requested or "").strip()
    if requested:
        if requested not in table.columns:
            raise InputError("batch.no_column", column=requested, columns=", ".join(table.columns))
        return requested
    guess = guess_column(table.columns, role)
    return guess or (table.columns[0] if required else None)


class BatchJob(WorkerJob):
    """Runs ``process`` over ``texts`` in mini-batches; ``results`` grows as batches finish."""

    thread_name = "batch-job"

    def __init__(self, texts: list[str], process: ProcessFn, batch_size: int = 16) -> None:
        super().__init__()
        self.texts, self.process, self.batch_size = list(texts), process, max(1, int(batch_size or 1))
        self.results: list[dict] = []
        self.error: Msg | None = None
        self.finalize: Callable[[], Any] | None = None  # builds the final outputs (set by the UI)

    def work(self) -> None:
        """Process every row until done, stopped or failed; a failure is kept in ``error``, rows done are kept."""
        try:
            for start in range(0, len(self.texts), self.batch_size):
                if self.stop_event.is_set():
                    break
                chunk = self.texts[start:start + self.batch_size]
                out = self.process(chunk)
                if len(out) != len(chunk):
                    raise WorkbenchError("batch.result_count", rows=len(chunk), results=len(out))
                self.results.extend(out)
        except WorkbenchError as exc:
            from pipelines.engines.remote_batch import partial_results

            self.results.extend(partial_results(exc))  # rows a remote engine answered before it failed
            self.error = exc.msg
        except Exception as exc:  # noqa: BLE001 - reported to the user; rows done are kept
            log.exception("Batch job failed")
            self.error = Msg.of("error.unexpected", kind=type(exc).__name__, detail=str(exc)[:200])

    @property
    def done(self) -> int:
        return len(self.results)

    @property
    def total(self) -> int:
        return len(self.texts)

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set() and self.done < self.total

    @property
    def rows_per_second(self) -> float:
        elapsed = (self.ended or time.perf_counter()) - self.started
        return self.done / elapsed if self.started and elapsed > 0 else 0.0

    @property
    def state(self) -> str:
        """failed, stopped, done or running."""
        return "failed" if self.error else "stopped" if self.stopped else "done" if self.finished else "running"

    def status(self) -> Msg:
        """``N of M rows (state, r rows/s)``, with the error when it failed."""
        line = Msg.of("batch.status", done=self.done, total=self.total, state=Msg.of(f"batch.state_{self.state}"),
                      speed=f"{self.rows_per_second:.1f}")
        return Msg.of("batch.status_error", status=line, error=self.error) if self.error else line


def result_frame(frame: pd.DataFrame, results: list[dict]) -> pd.DataFrame:
    """The input rows that were processed, with the result columns appended."""
    import pandas as pd

    done = frame.head(len(results)).reset_index(drop=True)
    extra = pd.DataFrame(results, index=done.index)
    clash = [c for c in extra.columns if c in done.columns]
    extra = extra.rename(columns={c: f"{c}_result" for c in clash})
    return pd.concat([done, extra], axis=1)


def write_outputs(frame: pd.DataFrame, stem: str, folder: str | Path | None = None) -> list[str]:
    """Write ``frame`` as CSV (formulas neutralised) and JSON records; return the two paths."""
    from pipelines.tables import write_csv

    folder = Path(folder or tempfile.mkdtemp(prefix="lmw-batch-"))
    csv_path = write_csv(frame, folder / f"{stem}.csv")
    json_path = folder / f"{stem}.json"
    records = json.loads(frame.to_json(orient="records", force_ascii=False))
    json_path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return [str(csv_path), str(json_path)]
