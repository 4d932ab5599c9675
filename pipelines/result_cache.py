"""Large per-session results (attention weights) kept on the server in one bounded cache, not in ``gr.State``.

A tab stores its result with :meth:`ResultCache.put` and keeps only the small :class:`Ticket` it gets back in
``gr.State``. The cache holds at most ``budget_bytes`` in all (least recently used entries go first), one entry per
(session, kind), and forgets a session's entries when the browser session ends (``Sessions.end`` calls
:meth:`ResultCache.end`) or when they have been idle longer than ``idle_seconds``. A ticket whose entry is gone is a
miss: the tab recomputes the result from the ticket's ``recipe`` (the plain inputs that made it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
TRIM_DELAY_S = 2.0  # quiet time after a big result is made or dropped (its response has been sent by then)


def release_memory() -> bool:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``); False where there is none.

    Attention weights come and go in tensors of a few MB each, which glibc keeps in its heaps once freed: without
    this an idle app would keep the peak of its last runs resident."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        return bool(ctypes.CDLL(name).malloc_trim(0))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return False


@dataclass(frozen=True)
class Ticket:
    """What ``gr.State`` keeps: the session and kind of the entry, its serial number and how to recompute it."""

    session: str
    kind: str
    serial: int
    recipe: tuple = ()  # plain values (model reference, texts, caps) the result is recomputed from


@dataclass
class _Entry:
    serial: int
    value: Any
    nbytes: int
    used: float


def size_of(value: Any) -> int:
    """Bytes held by ``value``'s numpy arrays (its attributes and lists, one level deep), at least 1 KiB."""
    total = 1024
    parts = list(vars(value).values()) if hasattr(value, "__dict__") else [value]
    for part in parts:
        items = part if isinstance(part, (list, tuple)) else [part]
        total += sum(int(item.nbytes) for item in items if isinstance(item, np.ndarray))
    return total


class ResultCache:
    """Per-session results under one byte budget, least recently used out first; thread-safe."""

    def __init__(self, budget_bytes: int, idle_seconds: float = 0.0) -> None:
        self.budget_bytes = max(0, int(budget_bytes))
        self.idle_seconds = float(idle_seconds)  # 0: no idle expiry
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._serials = itertools.count(1)
        self._lock = threading.Lock()
        self._trim: threading.Thread | None = None
        self._trim_at = 0.0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def put(self, session: str, kind: str, value: Any, recipe: tuple = (), nbytes: int | None = None) -> Ticket:
        """Keep ``value`` as the session's ``kind`` result (replacing the previous one); return its ticket.

        A value larger than the whole budget is not kept (its ticket misses and the result is recomputed).
        """
        size = size_of(value) if nbytes is None else int(nbytes)
        with self._lock:
            ticket = Ticket(session, kind, next(self._serials), tuple(recipe))
            self._entries.pop((session, kind), None)
            self._expire(time.monotonic())
            if size <= self.budget_bytes:
                self._entries[(session, kind)] = _Entry(ticket.serial, value, size, time.monotonic())
                self._shrink()
        return ticket

    def restore(self, ticket: Ticket, value: Any, nbytes: int | None = None) -> bool:
        """Keep a recomputed ``value`` under the same ``ticket`` again (the page's state needs no update), unless
        the session has stored a newer result of that kind meanwhile; True when kept."""
        size = size_of(value) if nbytes is None else int(nbytes)
        with self._lock:
            current = self._entries.get((ticket.session, ticket.kind))
            if (current is not None and current.serial > ticket.serial) or size > self.budget_bytes:
                return False
            self._entries.pop((ticket.session, ticket.kind), None)
            self._entries[(ticket.session, ticket.kind)] = _Entry(ticket.serial, value, size, time.monotonic())
            self._shrink()
            return (ticket.session, ticket.kind) in self._entries

    def get(self, ticket: Ticket | None) -> Any:
        """The value ``ticket`` stands for, or None when it was evicted, replaced or never kept."""
        if ticket is None:
            return None
        with self._lock:
            now = time.monotonic()
            self._expire(now)
            entry = self._entries.get((ticket.session, ticket.kind))
            if entry is None or entry.serial != ticket.serial:
                self.misses += 1
                return None
            entry.used = now
            self._entries.move_to_end((ticket.session, ticket.kind))
            self.hits += 1
            return entry.value

    def end(self, session: str) -> int:
        """Forget every entry of ``session``; return how many bytes were freed."""
        with self._lock:
            keys = [key for key in self._entries if key[0] == session]
            freed = sum(self._entries.pop(key).nbytes for key in keys)
        if freed:
            self.trim_soon()
        return freed

    def trim_soon(self, delay: float = TRIM_DELAY_S) -> None:
        """Return freed heap memory to the system once ``delay`` seconds passed without another call (after the
        last response of a burst was sent); one waiting thread at a time."""
        with self._lock:
            self._trim_at = time.monotonic() + delay
            if self._trim is not None:
                return
            self._trim = threading.Thread(target=self._trim_later, name="lmw-trim", daemon=True)
            self._trim.start()

    def _trim_later(self) -> None:
        while True:
            with self._lock:
                wait = self._trim_at - time.monotonic()
                if wait <= 0:
                    self._trim = None
                    break
            time.sleep(wait)
        release_memory()

    def session_bytes(self, session: str) -> int:
        with self._lock:
            return sum(entry.nbytes for key, entry in self._entries.items() if key[0] == session)

    @property
    def bytes_used(self) -> int:
        with self._lock:
            return sum(entry.nbytes for entry in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _shrink(self) -> None:
        """Drop least recently used entries until the budget holds (lock held)."""
        used = sum(entry.nbytes for entry in self._entries.values())
        while used > self.budget_bytes and self._entries:
            _, entry = self._entries.popitem(last=False)
            used -= entry.nbytes
            self.evictions += 1

    def _expire(self, now: float) -> None:
        """Drop entries idle for longer than ``idle_seconds`` (lock held)."""
        if self.idle_seconds <= 0:
            return
        for key in [k for k, e in self._entries.items() if now - e.used > self.idle_seconds]:
            del self._entries[key]
            self.evictions += 1
