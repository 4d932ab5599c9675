"""Marking a run whose training process ended without finishing it: failed (resumable when it has a checkpoint),
with one keyed sentence and the last lines of its output; used by the app when its child dies and at start-up
for runs left by a previous app (``store.recover_interrupted``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from pipelines.messages import Msg
from pipelines.training import launch
from pipelines.training.checkpoints import list_checkpoints
from pipelines.training.enums import RunStatus
from pipelines.training.progress import LOG_FILE, EventTail, record_msg
from pipelines.training.writer import move_into_place, now_iso, read_meta, write_meta

TAIL_LINES = 20


def last_failure(folder: Path) -> Msg | None:
    """The message of the last ``failed`` record of the run's event log (None when the child wrote none)."""
    tail = EventTail(Path(folder) / LOG_FILE)
    try:
        failed = [r for r in tail.read() if r.get("event") == "failed"]
    finally:
        tail.close()
    return record_msg(failed[-1]) if failed else None


def output_tail(folder: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last lines the launcher and its processes printed (``output.log``)."""
    try:
        text = (Path(folder) / launch.OUTPUT_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line[:300] for line in text.splitlines()[-lines:]]


def finalize_dead(folder: Path, fallback: Msg, *, prefer: Msg | None = None, drop_adapter: bool = False) -> Path:
    """Mark the run in ``folder`` failed and move it into place; returns the final folder.

    The message is ``prefer`` (e.g. killed by a second Stop), else the child's own ``failed`` record (out of
    memory...), else ``fallback`` (crashed with exit code N, or interrupted).
    """
    folder = Path(folder)
    message = prefer or last_failure(folder) or fallback
    if drop_adapter:
        shutil.rmtree(folder / "adapter", ignore_errors=True)
    checkpoints = list_checkpoints(folder)
    meta: dict[str, Any] = read_meta(folder) or {"id": folder.name.strip(".").removesuffix(".tmp")}
    meta.update(status=RunStatus.FAILED, error=str(message), error_key=message.key,
                error_params={k: str(v) if isinstance(v, Msg) else v for k, v in message.params.items()},
                resumable=bool(checkpoints), finished=now_iso(), log_tail=output_tail(folder),
                resume_step=int(checkpoints[-1].name.split("-")[1]) if checkpoints else None)
    write_meta(folder, meta)
    (folder / "STOP").unlink(missing_ok=True)
    return move_into_place(folder)


def crash_message(returncode: int | None, folder: Path | None = None) -> Msg:
    """Why a child ended without finishing: a signal (of the launcher, or of a training process as the launcher
    reported it in ``output.log``), an exit code, or unknown (it was not this app's child)."""
    import re
    import signal

    reported = re.findall(r"Signal \d+ \((SIG[A-Z]+)\)", "\n".join(output_tail(folder, 200))) if folder else []
    if reported:
        return Msg.of("training.crashed_signal", signal=reported[-1])
    if returncode is None:
        return Msg("training.crashed_unknown")
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return Msg.of("training.crashed_signal", signal=name)
    return Msg.of("training.crashed", code=returncode)


def live_child(folder: Path) -> bool:
    """Whether a training process (recorded in ``process.json``) still works on ``folder``."""
    return launch.run_alive(folder)


def legacy_writer_alive(meta: dict[str, Any]) -> bool:
    """Runs written before the child process: the app that trained in a thread is still alive."""
    pid = meta.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid() or meta.get("launched"):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
