"""The thread count of a llama.cpp model, tuned from measured decoding steps like the torch compute thread's.

On a 2-core machine with another process busy, llama.cpp with 2 threads waits at every op's barrier for the
thread the scheduler parked (measured: ~2 tok/s with 2 threads against ~30-45 tok/s with 1, load average ~8);
idle, 2 threads are faster. The tuner of :mod:`pipelines.generation.threads` keeps the faster count and now and
then tries the other one; here it switches llama.cpp's threads (``llama_set_n_threads``) instead of torch's, and
it tries the other count early in the first generation, so a loaded machine is noticed within a few tokens.

Only the decoding threads are tuned: the prompt is evaluated with every core (``n_threads_batch``), where each op
is a whole prompt's work and a barrier's wait is small beside it (100-token prompt, load average ~3: 0.60 s with 2
threads against 0.61 s with 1; idle, 2 threads take about half the time).
"""

from __future__ import annotations

import os
from typing import Any

from pipelines.generation.threads import EXPLORE_EVERY, ThreadTuner

TUNER_ATTR = "_lmw_thread_tuner"  # the tuner travels with its llama.cpp model (one per loaded model)


class LlamaThreadTuner(ThreadTuner):
    """Chooses 1 or all cores for one llama.cpp model; call :meth:`apply` before and :meth:`tick` after each eval."""

    def __init__(self, llm: Any, pinned: int = 0) -> None:
        cores = max(1, os.cpu_count() or 1)
        super().__init__(tuple(dict.fromkeys((cores, 1))), pinned=pinned)
        self.llm = llm
        self.prompt_threads = cores
        self.since_explore = EXPLORE_EVERY - 3  # the first generation tries the other count after 3 steps

    def apply(self) -> None:
        """Set the thread count for the next generation (a pinned count wins)."""
        self.current = self.pinned or self.best
        self._set(self.current)
        self.last = None
        self.exploring = 0

    def _switch(self, count: int) -> None:
        if count != self.current:
            self._set(count)
            self.current = count

    def _set(self, count: int) -> None:
        import llama_cpp

        llama_cpp.llama_set_n_threads(self.llm.ctx, count, self.pinned or self.prompt_threads)


def tuner_of(llm: Any, pinned: int = 0) -> LlamaThreadTuner:
    """The model's tuner (created on first use; call it in the compute thread)."""
    tuner = getattr(llm, TUNER_ATTR, None)
    if tuner is None:
        tuner = LlamaThreadTuner(llm, pinned)
        setattr(llm, TUNER_ATTR, tuner)
    tuner.pinned = max(0, int(pinned or 0))
    return tuner
