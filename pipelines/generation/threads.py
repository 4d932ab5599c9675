"""The one compute thread that runs every generation, and the thread count its torch ops use.

One long-lived thread keeps its OpenMP team warm; a fresh thread per request gets a new team that competes with
the idle, still-spinning teams of earlier threads (measured on a 2-core CPU: ~16 tok/s in a new thread against
~21-27 tok/s in a reused one; see bench/generate.py).

The thread count is tuned while decoding. With the CPU to itself, two OpenMP threads decode faster than one; when
another process keeps a core busy, a two-thread team waits at every op's barrier for the thread the scheduler
parked, and a decoding step took ~10x longer than with one thread (measured: ~530 ms against ~57 ms per step,
SmolLM2-135M fp32, another torch process running). :class:`ThreadTuner` times the decoding steps, keeps the
faster count, and now and then tries the other one (rarely when it was much slower). The count is set through
:func:`~pipelines.models.torch_threads.set_thread_count`: it changes this thread's team only; other threads,
and threads started later, keep theirs.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from pipelines.models.torch_threads import set_thread_count

T = TypeVar("T")
EXPLORE_EVERY = 32  # decoding steps between two tries of the other thread count (times how much slower it was)
EXPLORE_STEPS = 2
SAMPLES = 6


class ThreadTuner:
    """Chooses 1 or all cores for the compute thread's torch ops from measured decoding-step times.

    Call :meth:`apply` before a generation and :meth:`tick` after every forward pass (a forward hook); both must
    run in the compute thread. State persists across generations, so a new one starts with the last best count.
    """

    def __init__(self, counts: tuple[int, ...], pinned: int = 0) -> None:
        self.counts = counts
        self.pinned = max(0, int(pinned))
        self.best = self.counts[0]
        self.current = self.best
        self.samples: dict[int, deque[float]] = {n: deque(maxlen=SAMPLES) for n in self.counts}
        self.last: float | None = None
        self.since_explore = 0
        self.exploring = 0

    @property
    def enabled(self) -> bool:
        """Tuning runs unless the count is pinned (``AppConfig.gen_threads``, from ``LMW_GEN_THREADS``)."""
        return len(self.counts) > 1 and not self.pinned

    def apply(self) -> None:
        """Set the thread count for the next generation (a pinned count wins)."""
        self.current = self.pinned or self.best
        set_thread_count(self.current)
        self.last = None  # the first forward pass (the prompt) is not a decoding step
        self.exploring = 0  # a try of the other count cut short by the end of the last generation starts over

    def tick(self, *_: Any) -> None:
        """After each forward pass: record the step time, maybe switch the count for the next step."""
        now = time.perf_counter()
        last, self.last = self.last, now
        if not self.enabled or last is None:
            return
        self.samples[self.current].append(now - last)
        if self.exploring:
            self.exploring -= 1
            if self.exploring == 0:
                self._decide()
            return
        self.since_explore += 1
        if self.since_explore >= EXPLORE_EVERY * self._slowdown():
            self.since_explore, self.exploring = 0, EXPLORE_STEPS
            self._switch(next(n for n in self.counts if n != self.best))

    def _slowdown(self) -> float:
        """How many times slower the other count was (1 when unknown), capped at 8."""
        other = next(n for n in self.counts if n != self.best)
        if not self.samples[other] or not self.samples[self.best]:
            return 1.0
        ratio = min(self.samples[other]) / statistics.median(self.samples[self.best])
        return min(max(ratio, 1.0), 8.0)

    def _decide(self) -> None:
        other = next(n for n in self.counts if n != self.best)
        recent = list(self.samples[other])[-EXPLORE_STEPS:]
        if recent and self.samples[self.best] and min(recent) < statistics.median(self.samples[self.best]):
            self.best = other
            self.samples[other] = deque(recent, maxlen=SAMPLES)
        self._switch(self.best)

    def _switch(self, count: int) -> None:
        if count != self.current:
            set_thread_count(count)
            self.current = count


class ComputeThread:
    """The one long-lived compute thread: a single-worker executor, its :class:`ThreadTuner` and the generation
    lock (one generation at a time: the forward hooks and the global RNG seed are per process, and on a CPU two
    generations only slow each other down). The :class:`~pipelines.context.AppContext` owns one (``ctx.compute``).
    """

    def __init__(self, threads: int = 0) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmw-generate")
        self.lock = threading.Lock()
        self.tuner = ThreadTuner(tuple(dict.fromkeys((max(1, torch.get_num_threads()), 1))), pinned=threads)

    @property
    def threads(self) -> int:
        """The pinned torch thread count (0: tuned from measured decoding steps)."""
        return self.tuner.pinned

    def set_threads(self, threads: int) -> None:
        """Pin the compute thread's torch thread count (0 lets the tuner choose)."""
        self.tuner.pinned = max(0, int(threads or 0))

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn`` in the compute thread (after setting the thread count); returns its future."""
        return self.executor.submit(lambda: (self.tuner.apply(), fn())[1])

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the compute thread, under the generation lock, and return its result."""

        def locked() -> T:
            with self.lock:
                return fn()

        return self.submit(locked).result()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
