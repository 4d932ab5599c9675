"""Paired, interleaved timings for the 'auto' precisions (generation and batch classification).

One timing per candidate is noise on a shared 2-core CPU: a burst of load from another process lands on one
candidate and decides for it (the old batch auto timed int8 once on 32 rows and read 0.96x; the old generation
auto picked bfloat16 from decode steps alone and the time to first token went from 0.52 s to 2.52 s). So:

* candidates are timed in rounds that alternate the order (A B, B A, A B, ...), so a slow spell hits both sides;
* every round gives a *paired* ratio, reference seconds / candidate seconds, and a candidate counts as faster
  only when the **median** of its paired ratios clears a margin (``margin`` > 1);
* bfloat16 is a candidate only where a bfloat16 ``Linear`` measures faster than float32 for every work size the
  caller names (one row, decode-sized, and a prompt or a batch, prefill-sized): on CPUs without native bfloat16
  (AVX2 only) it is emulated and several times slower, and on AVX-512-BF16 CPUs it can still lose on one row.

torch is imported inside the functions (this module is imported at start-up through the precision modules).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def median(values: Sequence[float]) -> float:
    """The median (mean of the middle two for an even count); nan for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def interleaved_seconds(runs: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of every run in each of ``rounds`` rounds; even rounds go in order, odd rounds in reverse."""
    names = list(runs)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for number in range(rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            began = time.perf_counter()
            runs[name]()
            seconds[name].append(time.perf_counter() - began)
    return seconds


def paired_ratios(seconds: Mapping[str, Sequence[float]], reference: str) -> dict[str, list[float]]:
    """Per round, ``reference`` seconds over each other run's seconds (> 1: faster than the reference)."""
    ref = seconds[reference]
    return {name: [r / max(s, 1e-12) for r, s in zip(ref, times, strict=True)]
            for name, times in seconds.items() if name != reference}


def bf16_linear_speedups(width: int, rows: Sequence[int], rounds: int = 7, calls: int = 20) -> dict[int, float]:
    """Median paired speed-up of a bfloat16 ``Linear(width, 4 * width)`` over float32, for each input row count.

    About a tenth of a second per row count on a 2-core CPU for a 576-wide model (SmolLM2-135M)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(4 * width, width, generator=gen)
    result: dict[int, float] = {}
    with torch.inference_mode():
        for count in rows:
            x32 = torch.randn(count, width, generator=gen)
            pairs = {"float32": (x32, weight), "bfloat16": (x32.bfloat16(), weight.bfloat16())}
            runs = {name: _repeat(torch.nn.functional.linear, *args, calls=calls) for name, args in pairs.items()}
            for run in runs.values():  # first calls create the kernels; not what is compared
                run()
            result[count] = median(paired_ratios(interleaved_seconds(runs, rounds), "float32")["bfloat16"])
    return result


def bf16_is_faster(width: int, rows: Sequence[int], margin: float = 1.1) -> bool:
    """Whether bfloat16 beats float32 by ``margin`` for every row count in ``rows`` (decode- and prefill-sized)."""
    try:
        speedups = bf16_linear_speedups(width, rows)
    except Exception:  # noqa: BLE001 - no bfloat16 kernels at all: not a candidate
        return False
    return all(speed >= margin for speed in speedups.values())


def _repeat(fn: Callable[..., object], *args: object, calls: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(calls):
            fn(*args)

    return run


def machine_tag() -> str:
    """The CPU this runs on (model name, vector capability, threads): decisions measured elsewhere do not apply."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{name or 'cpu'}|{torch.backends.cpu.get_cpu_capability()}|{torch.get_num_threads()}t"
