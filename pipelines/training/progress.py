"""The run's append-only event log (``log.jsonl``): the child appends JSON lines, the app follows them.

Every record has ``event`` and ``time`` (Unix seconds). Kinds: ``started`` (world size, device, precision,
total steps, the shell command), ``rank`` (one per process), ``step`` (step, loss, throughput, ETA), ``eval``
(metrics), ``probes`` (the live probes' answers at an evaluation: step, answers), ``log`` (a message key and its
parameters), ``checkpoint``, ``resumed`` (the step training continues
from), ``best`` (the best validation step so far), and the terminal ``finished`` (status complete/stopped) or
``failed`` (a message key). :func:`apply` folds records into a :class:`JobState`, so a reloaded page or a
restarted app rebuilds the same curves, log and status from the file alone.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.messages import Msg
from pipelines.training.enums import RunStatus

MAX_LOG_LINES = 400
LOG_FILE = "log.jsonl"
TERMINAL = frozenset({"finished", "failed"})


def encode(value: Any) -> Any:
    """A message parameter as JSON (a nested :class:`Msg` becomes ``{"$msg": key, "params": {...}}``)."""
    if isinstance(value, Msg):
        return {"$msg": value.key, "params": {k: encode(v) for k, v in value.params.items()}}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def decode(value: Any) -> Any:
    if isinstance(value, dict) and "$msg" in value:
        return Msg(str(value["$msg"]), {k: decode(v) for k, v in dict(value.get("params") or {}).items()})
    return value


def msg_record(message: Msg) -> dict[str, Any]:
    """The JSON fields of a message: key, encoded params, the English text, and plain params at top level."""
    plain = {k: v for k, v in message.params.items() if isinstance(v, str | int | float)}
    return {**plain, "key": message.key, "params": {k: encode(v) for k, v in message.params.items()},
            "message": str(message)}


def record_msg(record: dict[str, Any]) -> Msg:
    """The message of a ``log`` or ``failed`` record (old records without ``params`` keep their plain fields)."""
    params = record.get("params")
    if params is None:
        params = {k: v for k, v in record.items() if k not in ("event", "key", "message", "t", "time")}
    return Msg(str(record.get("key") or "training.log.empty"), {k: decode(v) for k, v in params.items()})


class EventLog:
    """Appends records to ``<folder>/log.jsonl`` (one ``write`` per line, flushed at once)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": round(time.time(), 3), **fields}, ensure_ascii=False,
                          default=str) + "\n"
        fd = os.open(self.folder / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def log(self, message: Msg) -> None:
        self.write("log", **msg_record(message))


class EventTail:
    """Reads the complete lines appended since the last call (a partial last line waits for its newline).

    The file stays open once found, so it is still read after the run folder is renamed into place.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh: Any = None
        self._rest = b""

    def read(self) -> list[dict[str, Any]]:
        if self._fh is None:
            try:
                self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open on purpose (see the class doc)
            except OSError:
                return []
        chunk = self._rest + self._fh.read()
        lines = chunk.split(b"\n")
        self._rest = lines.pop()
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


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
    """What the UI shows, rebuilt from the event log by :func:`apply`."""

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
    world_size: int = 0
    ranks: list[int] = field(default_factory=list)
    best_step: int | None = None
    started_at: float = 0.0
    terminal: bool = False  # the child wrote finished/failed
    resumable: bool = False
    probes: list[dict] = field(default_factory=list)  # live probes: {"step", "answers"} per evaluation

    @property
    def finished(self) -> bool:
        return RunStatus.parse(self.status).finished

    def log_text(self, lang: str = "en") -> str:
        return "\n".join(line.render(lang) for line in self.log)

    def add_line(self, message: Msg, at: float | None = None) -> None:
        seconds = (at or time.time()) - self.started_at if self.started_at else 0.0
        self.log = [*self.log[-MAX_LOG_LINES:], LogLine(max(seconds, 0.0), message)]


def apply(state: JobState, record: dict[str, Any]) -> None:
    """Fold one event-log record into ``state``."""
    kind, at = record.get("event"), float(record.get("time") or 0) or None
    if not state.started_at and at:
        state.started_at = at
    if kind == "started":
        state.world_size = int(record.get("world_size", 1))
        state.device = str(record.get("device", state.device))
        state.precision = str(record.get("precision", state.precision))
        state.total_steps = int(record.get("total_steps", state.total_steps))
        state.status = RunStatus.RUNNING
    elif kind == "rank":
        state.ranks = sorted({*state.ranks, int(record.get("rank", 0))})
    elif kind == "step":
        state.step, state.total_steps = int(record["step"]), int(record.get("total", state.total_steps))
        state.epoch = float(record.get("epoch", state.epoch))
        state.samples_per_s = float(record.get("samples_per_s", 0.0))
        state.tokens_per_s = float(record.get("tokens_per_s", 0.0))
        state.eta_s = record.get("eta_s")
        state.train_curve = [*state.train_curve, (state.step, float(record["loss"]))]
    elif kind == "eval":
        metrics = dict(record.get("metrics") or {})
        state.metrics = metrics
        state.val_curve = [*state.val_curve, (int(record["step"]), float(metrics.get("val_loss", 0.0)))]
    elif kind == "probes":
        from pipelines.training.probes import fold

        state.probes = fold(state.probes, int(record.get("step", 0)), list(record.get("answers") or []))
    elif kind == "best":
        state.best_step = int(record["step"])
    elif kind == "resumed":
        # Steps after the checkpoint were trained again: drop them so the curve has neither gap nor overlap.
        step = int(record["step"])
        state.train_curve = [p for p in state.train_curve if p[0] <= step]
        state.val_curve = [p for p in state.val_curve if p[0] <= step]
        state.probes = [p for p in state.probes if int(p.get("step", 0)) <= step]
        state.step, state.status, state.terminal = step, RunStatus.RUNNING, False
        state.error, state.error_msg = "", None
    elif kind == "log":
        state.add_line(record_msg(record), at)
    elif kind == "finished":
        state.status, state.terminal = RunStatus.parse(record.get("status")), True
        state.metrics = dict(record.get("metrics") or state.metrics)
        state.resumable = bool(record.get("resumable", False))
    elif kind == "failed":
        message = record_msg(record)
        if state.error_msg != message:  # every process may report the same failure: show it once
            state.add_line(message, at)
        state.status, state.terminal, state.error, state.error_msg = RunStatus.FAILED, True, str(message), message
    state.version += 1


def replay(path: Path, state: JobState) -> JobState:
    """``state`` with every record of the log at ``path`` applied."""
    tail = EventTail(path)
    try:
        for record in tail.read():
            apply(state, record)
    finally:
        tail.close()
    return state
