"""Torch thread counts that stay with the thread that set them.

``torch.set_num_threads`` sets the calling thread's OpenMP team, and also the count that every thread started
later begins with (PyTorch keeps it in one process-wide value that a new thread reads on its first op). So a
count chosen for one thread (one thread to decode on a busy CPU, one per worker for side-by-side batches) leaked
into every request thread started afterwards: a CSV batch after a chat ran on one core. :func:`set_thread_count`
sets the calling thread's count only; the start count is put back from a short-lived thread. (A thread reads the
start count on its first torch call, which would undo a count set before it: so that call comes first.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_new_thread(fn: Callable[[], T]) -> T:
    """``fn()`` run in a short-lived thread (which has the start count, and may change it), and its result."""
    out: list[T] = []
    thread = threading.Thread(target=lambda: out.append(fn()), name="lmw-threads", daemon=True)
    thread.start()
    thread.join()
    return out[0]


def start_count() -> int:
    """The torch thread count a thread started now begins with."""
    import torch

    return in_new_thread(torch.get_num_threads)


def set_start_count(count: int) -> None:
    """Make ``count`` the torch thread count of threads started from now on (this thread's count is kept)."""
    import torch

    in_new_thread(lambda: torch.set_num_threads(max(1, count)))


def set_thread_count(count: int) -> None:
    """Set this thread's torch thread count, leaving the count new threads start with as it was."""
    import torch

    count = max(1, int(count))
    start = start_count()
    torch.get_num_threads()  # this thread's first torch call reads the start count: make it happen before the set
    torch.set_num_threads(count)
    if start != count:
        set_start_count(start)
