"""Per-user quotas when the app has several logins (``LMW_USERS``): each refusal is one sentence naming the limit
and the environment variable that raises it. Without login (``user`` None) nothing is checked."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import LimitError

if TYPE_CHECKING:
    from pipelines.sessions import Sessions
    from pipelines.training.store import RunStore

JOB_USER = "quota-user"  # the ``ctx.sessions`` value naming the user of a session that started a batch job
SESSION_JOB_KINDS = ("evaluate", "batch:")  # ``ctx.sessions`` kinds counted as a user's jobs (batch: any tab)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


def session_jobs(sessions: Sessions, user: str, skip: tuple[str, str] | None = None) -> int:
    """The running batch and evaluation jobs of ``user`` (sessions whose :data:`JOB_USER` is ``user``), not
    counting ``skip`` (the (session, kind) a new job is about to replace)."""
    return sum(1 for session, kind, _ in sessions.running()
               if kind.startswith(SESSION_JOB_KINDS) and (session, kind) != skip
               and sessions.get_value(session, JOB_USER) == user)


def training_jobs(store: RunStore, user: str) -> int:
    """The training runs of ``user`` being written now."""
    return sum(1 for run_id in store.owned_by(user) if store.in_progress(run_id))


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder`` (unreadable entries count 0)."""
    total = 0
    for file in Path(folder).rglob("*"):
        try:
            if file.is_file() and not file.is_symlink():
                total += file.stat().st_size
        except OSError:
            continue
    return total


@dataclass(frozen=True)
class Quotas:
    """What one user may hold or start at a time (environment variable in brackets)."""

    jobs: int = 2  # jobs running at once: training, batches, evaluations (LMW_QUOTA_JOBS): train and batch at once
    runs: int = 20  # fine-tuning runs stored (LMW_QUOTA_RUNS)
    run_disk_mb: int = 2048  # disk used by the user's runs (LMW_QUOTA_DISK_MB)
    upload_mb: int = 50  # one uploaded file (LMW_QUOTA_UPLOAD_MB)
    batch_rows: int = 10_000  # rows of one batch or training table (LMW_QUOTA_ROWS)

    @classmethod
    def from_env(cls) -> Quotas:
        return cls(jobs=_env_int("LMW_QUOTA_JOBS", cls.jobs), runs=_env_int("LMW_QUOTA_RUNS", cls.runs),
                   run_disk_mb=_env_int("LMW_QUOTA_DISK_MB", cls.run_disk_mb),
                   upload_mb=_env_int("LMW_QUOTA_UPLOAD_MB", cls.upload_mb),
                   batch_rows=_env_int("LMW_QUOTA_ROWS", cls.batch_rows))

    def check_new_run(self, store: RunStore, user: str | None, other_jobs: int = 0) -> None:
        """Before a training run starts for ``user``: running jobs (``other_jobs``: the user's batch and
        evaluation jobs, see :func:`session_jobs`), stored runs and their disk use."""
        if user is None:
            return
        mine = store.owned_by(user)
        running = [run_id for run_id in mine if store.in_progress(run_id)]
        if len(running) + other_jobs >= self.jobs:
            raise LimitError("users.quota.jobs", limit=self.jobs, env="LMW_QUOTA_JOBS")
        if len(mine) - len(running) >= self.runs:
            raise LimitError("users.quota.runs", limit=self.runs, env="LMW_QUOTA_RUNS")
        used = sum(folder_bytes(store.folder_of(run_id)) for run_id in mine)
        if used >= self.run_disk_mb * 2**20:
            raise LimitError("users.quota.disk", used=used // 2**20, limit=self.run_disk_mb, env="LMW_QUOTA_DISK_MB")

    def check_upload(self, size_bytes: int, user: str | None) -> None:
        """An uploaded file of ``size_bytes`` for ``user``."""
        if user is not None and size_bytes > self.upload_mb * 2**20:
            raise LimitError("users.quota.upload", size=round(size_bytes / 2**20, 1), limit=self.upload_mb,
                             env="LMW_QUOTA_UPLOAD_MB")

    def check_rows(self, rows: int, user: str | None) -> None:
        """A batch (or training table) of ``rows`` rows for ``user``."""
        if user is not None and rows > self.batch_rows:
            raise LimitError("users.quota.rows", rows=rows, limit=self.batch_rows, env="LMW_QUOTA_ROWS")

    def start_session_job(self, store: RunStore, sessions: Sessions, session: str, kind: str,
                          user: str | None) -> None:
        """Before a batch or evaluation job of ``kind`` starts in ``session`` for ``user``: refuse it when the
        user's running jobs (training, batches, evaluations; the session's own job of ``kind`` is replaced, so
        it does not count) reach the limit; else record the session's user so that the job counts."""
        if user is None:
            return
        running = training_jobs(store, user) + session_jobs(sessions, user, skip=(session, kind))
        if running >= self.jobs:
            raise LimitError("users.quota.jobs", limit=self.jobs, env="LMW_QUOTA_JOBS")
        sessions.set_value(session, JOB_USER, user)
