"""Timing helpers shared by the benches: medians after a warm-up, alternate (paired) timings, the load average,
and this CPU's measured float32 matrix-product throughput (to say how far a goal is from what the arithmetic
alone needs)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after one warm-up call."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def paired(fn: Callable[[], object], reference: Callable[[], object], repeats: int,
           warm: bool = True) -> tuple[float, float, float]:
    """Medians of ``fn`` and ``reference`` timed alternately (the shared machine's load hits both alike), and the
    median of the per-pair ratios."""
    if warm:
        fn(), reference()  # warm-up
    ours, refs, ratios = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        middle = time.perf_counter()
        reference()
        ended = time.perf_counter()
        ours.append(middle - started)
        refs.append(ended - middle)
        ratios.append(ours[-1] / refs[-1])
    return statistics.median(ours), statistics.median(refs), statistics.median(ratios)


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def matmul_gflops(m: int = 512, k: int = 576, n: int = 49152, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an (m x k) @ (k x n) product on this machine (torch's threads), over ``repeats``."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    torch.mm(a, b, out=out)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - started)
    return 2 * m * k * n / best / 1e9
