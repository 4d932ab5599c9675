"""Many calls with a bounded number in flight, results in input order: how CSV batches use a remote engine.

:func:`map_in_flight` runs ``fn`` over ``items`` in worker threads, never more than ``max_in_flight`` at once.
Stop (an event) and a failure both stop *starting* items; the calls already in flight finish, and what is done
is kept: Stop returns the results of the leading items, a failure raises the first error (in input order) with
those results on it (:func:`partial_results`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int, int], None]  # (items done, items in all)
PARTIAL = "partial_results"


def partial_results(exc: BaseException) -> list:
    """The results of the leading items that were done before ``exc`` stopped :func:`map_in_flight`."""
    return list(getattr(exc, PARTIAL, []))


def keep_partial(exc: BaseException, results: list) -> BaseException:
    """Attach ``results`` (the leading items done) to ``exc``, e.g. after turning them into rows; returns it."""
    setattr(exc, PARTIAL, list(results))
    return exc


def _leading(results: list, done: list[bool]) -> list:
    """Results of the items done before the first one that is not."""
    count = done.index(False) if False in done else len(done)
    return results[:count]


def map_in_flight(fn: Callable[[T], R], items: Sequence[T], max_in_flight: int, progress: Progress | None = None,
                  stop: threading.Event | None = None) -> list[R]:
    """``[fn(x) for x in items]`` with at most ``max_in_flight`` calls running at once, in input order.

    ``progress(done, total)`` is called after each item finishes. After ``stop`` is set no new item starts; the
    calls in flight finish and the results of the leading items done are returned (so fewer than ``items``).
    When a call raises, no new item starts, the others in flight finish, and the first error in input order is
    raised with the leading results attached (:func:`partial_results`).
    """
    items = list(items)
    total = len(items)
    width = max(1, int(max_in_flight or 1))
    if total == 0:
        return []
    results: list = [None] * total
    done = [False] * total
    errors: dict[int, BaseException] = {}
    running: dict[Future, int] = {}
    next_index = 0
    finished = 0
    with ThreadPoolExecutor(max_workers=min(width, total), thread_name_prefix="lmw-in-flight") as pool:
        while running or next_index < total:
            halted = bool(errors) or (stop is not None and stop.is_set())
            while not halted and next_index < total and len(running) < width:
                running[pool.submit(fn, items[next_index])] = next_index
                next_index += 1
            if not running:
                break
            ready, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in ready:
                index = running.pop(future)
                error = future.exception()
                if error is not None:
                    errors[index] = error
                    continue
                results[index], done[index] = future.result(), True
                finished += 1
                if progress is not None:
                    progress(finished, total)
    kept = _leading(results, done)
    if errors:
        raise keep_partial(errors[min(errors)], kept)
    return kept
