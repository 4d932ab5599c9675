"""Batch runner for CSV mode: mini-batches in a worker thread with a stop event; rows done are always kept."""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.columns import guess_column
from pipelines.errors import InputError, WorkbenchError
from pipelines.tables import Table, write_csv

log = logging.getLogger(__name__)
ProcessFn = Callable[[list[str]], list[dict]]


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
            raise InputError(f"The file has no column '{requested}'; its columns are: {', '.join(table.columns)}.")
        return requested
    guess = guess_column(table.columns, role)
    return guess or (table.columns[0] if required else None)


@dataclass
class BatchJob:
    """Runs ``process`` over ``texts`` in mini-batches; ``results`` grows as batches finish."""

    texts: list[str]
    process: ProcessFn
    batch_size: int = 16
    results: list[dict] = field(default_factory=list)
    error: str | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0
    ended: float = 0.0
    finalize: Callable[[], object] | None = None  # builds the final outputs (set by the UI)
    _thread: threading.Thread | None = None

    def run(self) -> None:
        """Process every row (in the calling thread) until done, stopped or failed."""
        self.started = time.perf_counter()
        try:
            for start in range(0, len(self.texts), max(1, self.batch_size)):
                if self.stop_event.is_set():
                    break
                chunk = self.texts[start:start + self.batch_size]
                out = self.process(chunk)
                if len(out) != len(chunk):
                    raise RuntimeError(f"{len(chunk)} rows in, {len(out)} results out")
                self.results.extend(out)
        except WorkbenchError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the user; rows done are kept
            log.exception("Batch job failed")
            self.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            self.ended = time.perf_counter()

    def start(self) -> BatchJob:
        self._thread = threading.Thread(target=self.run, name="batch-job", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True when it has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished

    @property
    def finished(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

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

    def status(self) -> str:
        state = "failed" if self.error else "stopped" if self.stopped else "done" if self.finished else "running"
        text = f"{self.done} of {self.total} rows ({state}, {self.rows_per_second:.1f} rows/s)"
        return f"{text}. Error: {self.error}" if self.error else text


class JobRegistry:
    """The current batch job of each (tab, session), so a Stop click can reach the worker of its own run."""

    def __init__(self, keep: int = 32) -> None:
        self._jobs: dict[str, BatchJob] = {}
        self._lock = threading.Lock()
        self.keep = keep  # finished jobs kept (oldest dropped first) so their results can be freed

    def put(self, key: str, job: BatchJob) -> None:
        with self._lock:
            old = self._jobs.pop(key, None)
            if old is not None and old is not job:
                old.stop()
            self._jobs[key] = job
            finished = [k for k, j in self._jobs.items() if j.finished and k != key]
            for k in finished[: max(0, len(finished) - self.keep)]:
                del self._jobs[k]

    def get(self, key: str) -> BatchJob | None:
        with self._lock:
            return self._jobs.get(key)


JOBS = JobRegistry()


def result_frame(frame: pd.DataFrame, results: list[dict]) -> pd.DataFrame:
    """The input rows that were processed, with the result columns appended."""
    done = frame.head(len(results)).reset_index(drop=True)
    extra = pd.DataFrame(results, index=done.index)
    clash = [c for c in extra.columns if c in done.columns]
    extra = extra.rename(columns={c: f"{c}_result" for c in clash})
    return pd.concat([done, extra], axis=1)


def write_outputs(frame: pd.DataFrame, stem: str, folder: str | Path | None = None) -> list[str]:
    """Write ``frame`` as CSV (formulas neutralised) and JSON records; return the two paths."""
    folder = Path(folder or tempfile.mkdtemp(prefix="lmw-batch-"))
    csv_path = write_csv(frame, folder / f"{stem}.csv")
    json_path = folder / f"{stem}.json"
    records = json.loads(frame.to_json(orient="records", force_ascii=False))
    json_path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return [str(csv_path), str(json_path)]
