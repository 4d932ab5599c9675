"""Batched decoding across requests: concurrent generations on the same model share one forward pass per step.

Decoding a small model on a CPU is memory-bound (every step reads all the weights), so stepping eight sequences
costs little more than stepping one. :class:`DecodeBatcher` (one per app, ``ctx.batcher``) collects requests
for a short window (``BatchingConfig.window_ms``), prefills them together, and then runs one forward pass per
step for every live sequence; requests that arrive meanwhile join between steps, finished or stopped ones leave.
Each request keeps its own stream, sampling settings, seed, stop strings, token budget and Stop button
(:mod:`pipelines.generation.batcher_rows`).

Why not transformers' continuous batching (``generate_batch`` / ``init_continuous_batching``)? It schedules
paged-attention blocks for throughput and streams plain token ids: it has no per-request seed, no per-token
probabilities of the model's own distribution, no stop strings, and its paged kernels do not promise the same
greedy output as ``model.generate`` in float32. This batcher keeps all of these.

The batch loop runs in the context's compute thread (``ctx.compute``) under its lock, so it never runs beside
another generation. It is fair: when other compute work is queued, or a request for another model is waiting,
the batch stops taking new requests, finishes its rows and hands the thread on; the waiting requests are then
served in order of arrival.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from pipelines.config import BatchingConfig

if TYPE_CHECKING:
    from pipelines.generation.batcher_rows import BatchRequest
    from pipelines.generation.batcher_step import DecodeBatch
    from pipelines.generation.threads import ComputeThread


class DecodeBatcher:
    """Steps concurrent generation requests on the same model together (see the module docstring)."""

    def __init__(self, compute: ComputeThread, config: BatchingConfig | None = None) -> None:
        self.compute = compute
        self.config = config or BatchingConfig()
        self._cond = threading.Condition()
        self._pending: list[BatchRequest] = []
        self._scheduled = False  # a batch loop is queued or running in the compute thread
        self._joinable: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
        self.steps = 0  # decoding steps run (one forward pass each), for benchmarks
        self.peak_rows = 0  # the most sequences one step has carried

    @property
    def enabled(self) -> bool:
        """Whether generations go through the batcher (``LMW_BATCHING=0`` turns it off)."""
        return bool(self.config.enabled)

    @property
    def waiting(self) -> int:
        """Requests queued for their first decoding step."""
        with self._cond:
            return len(self._pending)

    def submit(self, request: BatchRequest) -> None:
        """Queue ``request``; its tokens arrive on ``request.streamer.queue``."""
        with self._cond:
            self._pending.append(request)
            self._cond.notify_all()
            if self._scheduled:
                return
            self._scheduled = True
        self._schedule()

    def cancel(self, request: BatchRequest) -> None:
        """Forget ``request`` if it is still waiting (a client gone before its turn); a running one leaves at the
        next step through its stop events."""
        with self._cond:
            if request not in self._pending:
                return
            self._pending.remove(request)
        request.close()

    def _schedule(self) -> None:
        try:
            self.compute.submit(self._run)
        except RuntimeError as exc:  # the compute thread was shut down with the app
            with self._cond:
                waiting, self._pending, self._scheduled = self._pending, [], False
            for request in waiting:
                request.close(exc)

    def _run(self) -> None:
        """One turn in the compute thread: serve the oldest waiting model's requests until their batch is empty."""
        import torch

        try:
            with self.compute.lock, torch.inference_mode():
                self._drain()
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        """After a turn: stop, or queue the next turn when requests still wait."""
        with self._cond:
            if not self._pending:
                self._scheduled = False
                return
        self._schedule()  # requests for another model, or held back for other work: queue behind that work

    def _drain(self) -> None:
        from pipelines.generation.batcher_step import DecodeBatch

        joiners = self._take(None)
        if not joiners:
            return
        first = joiners[0]
        batch = DecodeBatch(first.model, _pad_id(first.tokenizer), self.compute.tuner.tick)
        try:
            while True:
                if joiners:
                    self._admit(batch, joiners)
                batch.release()
                if batch.empty:
                    return
                batch.step()
                self.steps += 1
                self.peak_rows = max(self.peak_rows, len(batch.rows))
                batch.release()
                joiners = self._take(batch)
        except Exception as exc:  # noqa: BLE001 - every row's consumer re-raises it
            batch.fail(exc)

    def _admit(self, batch: DecodeBatch, joiners: list[BatchRequest]) -> None:
        """Prefill ``joiners`` into ``batch``; a failure ends only their streams."""
        fresh = batch.cache is None
        try:
            batch.admit(joiners)
        except Exception as exc:  # noqa: BLE001 - the joiners' consumers re-raise it
            for request in joiners:
                if request in batch.rows:
                    batch.rows.remove(request)
                request.close(exc)
            if fresh:
                batch.fail(exc)
            return
        if fresh:
            self._joinable[batch.model] = batch.joinable
        self.compute.tuner.last = None  # a prompt's forward pass is not a decoding step for the thread tuner

    def _take(self, batch: DecodeBatch | None) -> list[BatchRequest]:
        """The waiting requests that (may) join ``batch`` now, in order of arrival (a new batch when None)."""
        limit = max(1, int(self.config.max_batch))
        with self._cond:
            if batch is None and self._pending and len(self._pending) < limit and self.config.window_ms > 0:
                self._cond.wait_for(lambda: len(self._pending) >= limit, timeout=self.config.window_ms / 1000)
            if not self._pending:
                return []
            if batch is not None and (self._others_waiting() or (not batch.empty and not batch.joinable)):
                return []  # other work queued behind this turn goes first; then the waiting requests get a new turn
            model = batch.model if batch is not None else self._pending[0].model
            room = limit - (len(batch.rows) if batch is not None else 0)
            if not self._joinable.get(model, False) and (batch is None or batch.empty):
                room = min(room, 1)  # a model not seen yet: learn from one prompt whether its cache can be joined
            taken: list[BatchRequest] = []
            while self._pending and len(taken) < room and self._pending[0].model is model:
                if batch is not None and not self._fits(batch, [*taken, self._pending[0]]):
                    break  # joining would pad the cache past its budget: the request waits for the next turn
                request = self._pending.pop(0)
                if request.stopped:
                    request.close()
                    continue
                taken.append(request)
        return taken

    def _fits(self, batch: DecodeBatch, joiners: list[BatchRequest]) -> bool:
        """Whether ``joiners`` may join ``batch`` within ``BatchingConfig.max_cache_mb``."""
        width = max(len(r.prompt_ids) + r.max_new for r in joiners)
        return batch.cache_bytes(len(joiners), width) <= self.config.max_cache_mb * 2**20

    def _others_waiting(self) -> bool:
        """True when other work (a next-token request, an unbatched generation) waits for the compute thread."""
        queued = getattr(self.compute.executor, "_work_queue", None)
        return bool(queued is not None and not queued.empty())


def _pad_id(tokenizer: Any) -> int:
    """A token id for left padding (masked out, so any valid id does)."""
    for value in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            return value
    return 0
