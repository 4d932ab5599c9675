"""Micro-batching: requests on the same model that arrive together (different users at once) share one forward pass.

Each caller hands :meth:`MicroBatcher.run` its own items and a function that runs a list of items in one go. The
first caller on an idle model waits a short collection window (a few ms), then runs every request that arrived
in the meantime as one batch (up to ``max_items`` items and ``max_cost``); callers that arrive while a batch
runs form the next one, which starts as soon as it ends. Each caller gets exactly its own results, in its order.
A batch that fails is run again request by request, so one caller's bad input fails only that caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

# The concurrency id of events whose requests are micro-batched: several may be in progress at once (each event
# also sets ``concurrency_limit``), and the batcher runs their forward passes together.
BATCHED = "batched"


@dataclass(eq=False)
class _Request:
    items: list
    cost: float
    woken: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # promoted to run the next batch (the one it is in)
    result: list | None = None
    error: BaseException | None = None


@dataclass(eq=False)
class _Lane:
    """The requests waiting for one model (one key); ``busy`` while a caller is collecting or running a batch."""

    pending: list[_Request] = field(default_factory=list)
    busy: bool = False


class MicroBatcher:
    """Groups concurrent calls with the same key into one call of ``fn`` (one forward pass); thread-safe."""

    def __init__(self, window_s: float = 0.005, max_items: int = 8) -> None:
        self.window_s = max(0.0, float(window_s))
        self.max_items = max(1, int(max_items))
        self._lanes: dict[Hashable, _Lane] = {}
        self._lock = threading.Lock()
        self.batches = 0  # batches run (for tests and benchmarks)
        self.largest = 0  # most requests seen in one batch

    def run(self, key: Hashable, items: Sequence[Any], fn: Callable[[list], Sequence[Any]], cost: float = 0.0,
            max_cost: float = 0.0) -> list:
        """``fn(items)`` for this caller, run together with other callers' items under the same ``key``.

        ``fn`` must map a list to a list of the same length, one result per item, the same whoever calls it for
        ``key`` (same model, same settings). ``cost``/``max_cost`` (e.g. bytes of attention weights) bound what
        one batch may hold besides ``max_items``; a request over the bounds runs alone.
        """
        request = _Request(list(items), float(cost))
        if not request.items:
            return []
        with self._lock:
            lane = self._lanes.setdefault(key, _Lane())
            lane.pending.append(request)
            leader = not lane.busy
            lane.busy = True
        if leader:
            if self.window_s > 0:
                time.sleep(self.window_s)  # the collection window: let concurrent callers join
        else:
            request.woken.wait()
        if request.lead or leader:
            self._serve(key, lane, fn, max_cost)
        if request.error is not None:
            raise request.error
        return list(request.result or [])

    def _take(self, lane: _Lane, max_cost: float) -> list[_Request]:
        """The next batch from the head of the lane (lock held): at least one request, then what fits the caps."""
        batch = [lane.pending.pop(0)]
        count, cost = len(batch[0].items), batch[0].cost
        while lane.pending:
            nxt = lane.pending[0]
            if count + len(nxt.items) > self.max_items or (max_cost > 0 and cost + nxt.cost > max_cost):
                break
            batch.append(lane.pending.pop(0))
            count, cost = count + len(nxt.items), cost + nxt.cost
        return batch

    def _serve(self, key: Hashable, lane: _Lane, fn: Callable[[list], Sequence[Any]], max_cost: float) -> None:
        """Run one batch (it holds the calling request), then hand the lane to the next waiting request."""
        with self._lock:
            batch = self._take(lane, max_cost)
            self.batches += 1
            self.largest = max(self.largest, len(batch))
        try:
            self._execute(batch, fn)
        finally:
            with self._lock:
                if lane.pending:
                    lane.pending[0].lead = True
                    lane.pending[0].woken.set()
                else:
                    lane.busy = False
                    if self._lanes.get(key) is lane:
                        del self._lanes[key]
            for request in batch:
                request.woken.set()

    @staticmethod
    def _execute(batch: list[_Request], fn: Callable[[list], Sequence[Any]]) -> None:
        """One call of ``fn`` for the whole batch; on failure, each request alone (its own result or error)."""
        flat = [item for request in batch for item in request.items]
        try:
            out = list(fn(flat))
            if len(out) != len(flat):
                raise IndexError(len(out))
        except Exception as exc:  # noqa: BLE001 - handed to the caller(s) it belongs to
            if len(batch) == 1:
                batch[0].error = exc
                return
            for request in batch:
                try:
                    request.result = list(fn(request.items))
                except Exception as own:  # noqa: BLE001 - this caller's own error
                    request.error = own
            return
        start = 0
        for request in batch:
            request.result = out[start:start + len(request.items)]
            start += len(request.items)
