"""Per-session jobs and values, owned by the one :class:`~pipelines.context.AppContext`.

Every long job (a generation's stop handle, a CSV batch, a training run, an evaluation) is a :class:`WorkerJob`
or anything with ``stop()`` and ``finished``. A tab puts its job under ``(session, kind)``; Stop finds it there;
when the browser session ends (Gradio's ``unload``) :meth:`Sessions.end` stops and forgets all of them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)
API_SESSION = "api"


def session_key(request: Any) -> str:
    """The browser session of a Gradio request (duck-typed), or ``"api"`` for calls without one."""
    return getattr(request, "session_hash", None) or API_SESSION


class Stoppable(Protocol):
    def stop(self) -> None: ...

    @property
    def finished(self) -> bool: ...


class WorkerJob:
    """A job run in one worker thread, with a cooperative stop event.

    Subclasses implement :meth:`work` (check ``self.stop_event`` between units of work) and may override
    :meth:`cleanup` (always called, in the worker, after ``work``). An exception escaping ``work`` is logged and
    kept in ``self.exception``; subclasses that report errors their own way catch them inside ``work``.
    """

    thread_name = "lmw-job"
    outlives_session = False  # True: closing the browser tab does not stop it (see Sessions.end)

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.exception: BaseException | None = None
        self.started = 0.0
        self.ended = 0.0
        self._thread: threading.Thread | None = None

    def work(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Release what the job held (locks, models); runs in the worker after :meth:`work`."""

    def run(self) -> None:
        """Run the job in the calling thread (``start`` runs this in a worker)."""
        self.started = time.perf_counter()
        try:
            self.work()
        except Exception as exc:  # noqa: BLE001 - kept for the owner to report; the app keeps serving
            log.exception("%s failed", self.thread_name)
            self.exception = exc
        finally:
            self.ended = time.perf_counter()
            self.cleanup()

    def start(self) -> WorkerJob:
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
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
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return not self.running

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set()


class StopHandle:
    """A job run by the caller's own generator (a streaming generation): a stop event and its last output."""

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.latest: Any = None
        self.done = False

    def stop(self) -> None:
        self.stop_event.set()

    @property
    def finished(self) -> bool:
        return self.done


class Sessions:
    """Jobs and small values per (session, kind); thread-safe."""

    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str], Stoppable] = {}
        self._values: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._end_hooks: list[Any] = []  # callables(session) run by end(): e.g. ResultCache.end

    # ---- jobs -----------------------------------------------------------------------------------
    def put(self, session: str, kind: str, job: Stoppable) -> Stoppable:
        """Register ``job`` as the session's current ``kind`` job; an earlier one still running is stopped."""
        with self._lock:
            old = self._jobs.get((session, kind))
            self._jobs[(session, kind)] = job
        if old is not None and old is not job and not old.finished:
            old.stop()
        return job

    def get(self, session: str, kind: str) -> Any:
        with self._lock:
            return self._jobs.get((session, kind))

    def stop(self, session: str, kind: str) -> Any:
        """Stop the session's ``kind`` job (if any) and return it."""
        job = self.get(session, kind)
        if job is not None:
            job.stop()
        return job

    def forget(self, session: str, kind: str, job: Stoppable | None = None) -> None:
        """Drop the session's ``kind`` job (only if it is still ``job``, when given)."""
        with self._lock:
            if job is None or self._jobs.get((session, kind)) is job:
                self._jobs.pop((session, kind), None)

    def running(self, kind: str | None = None) -> list[tuple[str, str, Stoppable]]:
        """(session, kind, job) of every unfinished job (of ``kind``)."""
        with self._lock:
            items = list(self._jobs.items())
        return [(s, k, j) for (s, k), j in items if not j.finished and (kind is None or k == kind)]

    # ---- small per-session values (the last error shown, a stream's last snapshot) ---------------
    def set_value(self, session: str, name: str, value: Any) -> None:
        with self._lock:
            self._values[(session, name)] = value

    def get_value(self, session: str, name: str, default: Any = None) -> Any:
        with self._lock:
            return self._values.get((session, name), default)

    def pop_value(self, session: str, name: str, default: Any = None) -> Any:
        with self._lock:
            return self._values.pop((session, name), default)

    # ---- the end of a browser session ------------------------------------------------------------
    def on_end(self, hook: Any) -> None:
        """Call ``hook(session)`` whenever a session ends (a per-session cache forgets the session's entries)."""
        with self._lock:
            if hook not in self._end_hooks:
                self._end_hooks.append(hook)

    def end(self, session: str) -> int:
        """Stop and forget every job and value of ``session``; return how many jobs were stopped.

        A job whose ``outlives_session`` is true (a training run: it has its own run folder and log, and a
        reloaded page follows it again) is forgotten here but keeps running.
        """
        with self._lock:
            jobs = [(key, job) for key, job in self._jobs.items() if key[0] == session]
            for key, _ in jobs:
                del self._jobs[key]
            for key in [k for k in self._values if k[0] == session]:
                del self._values[key]
            hooks = list(self._end_hooks)
        for hook in hooks:
            hook(session)
        stopped = 0
        for _, job in jobs:
            if not job.finished and not getattr(job, "outlives_session", False):
                job.stop()
                stopped += 1
        return stopped

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)
