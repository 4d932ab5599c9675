"""Precision of a fine-tuned classifier on CSV batches: float32 (exact), bfloat16, int8 (dynamic quantisation), auto.

Which lower precision is fastest depends on the CPU, and whether it changes predictions depends on the model:

* bfloat16 weights run on oneDNN's AMX / AVX-512-BF16 kernels where the CPU has them (about 2.7x float32 for a
  MiniLM classifier on a 2-core Sapphire Rapids) and are emulated, slower than float32, where it has not;
* int8 is ``torch.ao.quantization.quantize_dynamic`` on the Linear layers (about 1.7x there); it can flip a
  prediction whose top two labels are nearly tied.

So ``auto`` measures instead of guessing:

* calls with fewer than ``MIN_BATCH_ROWS`` rows (a single text, the tail of a file) always run in float32;
* the first batch call of a model on the CPU classifies ``CALIBRATION_ROWS`` of its rows (groups of similar length
  spread over the call's lengths, see :func:`calibration_rows`) in float32; those rows keep their float32 answers
  (nothing is lost). Every candidate in ``CANDIDATES`` is timed against float32 on one group (``PROBE_ROWS``).
  Fastest first, a candidate that is at least ``MIN_SPEEDUP`` times faster and agrees on the probe then classifies
  the other calibration rows too; if it agrees with float32 on at least ``MIN_AGREEMENT`` of all of them (64 rows:
  no flip), it runs the rest of the rows and every later batch of that model. Otherwise the next candidate is
  checked the same way, and float32 is kept when none qualifies. Only the winner pays for the full check.
  (64 rows with no flip rejects a candidate that flips 2% of rows as often as 128 rows with at most one flip would,
  73% of the time, at half the cost.) The decision is cached per loaded model (model, adapter, device), so it is
  measured once; a candidate that fails to load or run is simply not chosen;
* on a GPU, auto is the device's usual precision (bfloat16/float16): these CPU measurements do not apply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import InputError

log = logging.getLogger(__name__)
PRECISIONS = ("auto", "float32", "bfloat16", "int8")
CANDIDATES = ("bfloat16", "int8")  # what auto tries against float32 on the CPU
CALIBRATION_ROWS = 64
PROBE_ROWS = 32  # rows (one group) every candidate is timed on
MIN_AGREEMENT = 0.99
MIN_SPEEDUP = 1.15
MIN_BATCH_ROWS = 32
WARMUP_ROWS = 4

_LOCK = threading.Lock()


@dataclass(frozen=True)
class Decision:
    """What auto chose: ``measured`` maps each candidate to (agreement, rows compared, speed-up over float32)."""

    chosen: str
    rows: int
    measured: dict[str, tuple[float, int, float]] = field(default_factory=dict)


_DECISIONS: dict[Any, Decision] = {}  # float32 cache key -> decision


def check_precision(precision: str | None) -> str:
    """``precision`` (None or empty means auto), or a clear error."""
    precision = (precision or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
    return precision


def agreement(first: list[dict], second: list[dict]) -> float:
    """Share of rows whose top label is the same in both result lists."""
    if not first:
        return 1.0
    return sum(a["label"] == b["label"] for a, b in zip(first, second, strict=True)) / len(first)


def qualifies(share: float, speed: float) -> bool:
    """A candidate that agrees with float32 often enough and is worth the switch."""
    return share >= MIN_AGREEMENT and speed >= MIN_SPEEDUP


def _timed(classifier: Any, texts: list[str]) -> tuple[list[dict], float]:
    classifier.classify(texts[:WARMUP_ROWS])  # first-call set-up (kernels, caches) is not what we compare
    began = time.perf_counter()
    out = classifier.classify(texts)
    return out, time.perf_counter() - began


def calibration_rows(lengths: list[int]) -> list[int]:
    """Indices of the rows to measure on: ``CALIBRATION_ROWS`` rows in groups of similar length, the probe first.

    The rows are sorted by length (characters); groups of ``PROBE_ROWS`` neighbours are taken around evenly spaced
    quantiles (the 25th and 75th percentile for two groups), so the sample spans the lengths and each group batches
    without padding (a prefix of the file would be padded to its longest row, slowing float32 down and skewing the
    timings). The group nearest the median comes first: it is the probe every candidate is timed on.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    wanted = max(1, CALIBRATION_ROWS // PROBE_ROWS)
    if len(order) <= wanted * PROBE_ROWS:
        groups = [order[i:i + PROBE_ROWS] for i in range(0, len(order), PROBE_ROWS)]
    else:  # centred on quantiles len/wanted (> PROBE_ROWS) apart, so the groups never overlap
        span = len(order) / wanted
        starts = [min(len(order) - PROBE_ROWS, max(0, round((j + 0.5) * span - PROBE_ROWS / 2))) for j in range(wanted)]
        groups = [order[start:start + PROBE_ROWS] for start in starts]
    probe = groups.pop((len(groups) - 1) // 2)
    return [i for group in (probe, *groups) for i in group]


class AutoPrecision:
    """A classifier that answers in float32 and switches its batches to the fastest precision that agrees."""

    def __init__(self, exact: Any, loaders: dict[str, Callable[[], Any]], key: Any,
                 release: Callable[[Any], object] | None = None) -> None:
        self.exact, self._loaders, self.key, self._release = exact, loaders, key, release
        self.labels, self.batch_size = exact.labels, exact.batch_size
        self.window = getattr(exact, "window", exact.batch_size)
        self._models: dict[str, Any] = {"float32": exact}

    @property
    def decision(self) -> Decision | None:
        """The measured decision for this model, or None before the first large enough batch."""
        with _LOCK:
            return _DECISIONS.get(self.key)

    @property
    def chosen(self) -> str | None:
        decision = self.decision
        return None if decision is None else decision.chosen

    def describe(self) -> str:
        """One line for the user: the precision used and why."""
        decision = self.decision
        if decision is None:
            return "Precision: float32 (auto; too few rows to measure a faster precision)."
        parts = [f"{name} {share:.1%}/{n} · {speed:.2f}x" for name, (share, n, speed) in decision.measured.items()]
        return (f"Precision: {decision.chosen} (auto; measured against float32 as agreement/rows · speed: "
                f"{'; '.join(parts) or 'none could run'}).")

    def classify(self, texts: list[str]) -> list[dict]:
        if len(texts) < MIN_BATCH_ROWS:
            return self.exact.classify(texts)
        results: list[dict | None] = [None] * len(texts)
        if self.decision is None:
            picked = calibration_rows([len(t) for t in texts])
            for i, result in zip(picked, self._calibrate([texts[i] for i in picked]), strict=True):
                results[i] = result
        rest = [i for i, r in enumerate(results) if r is None]
        if not rest:
            return results
        try:
            model = self._get(self.decision.chosen)
        except Exception:  # noqa: BLE001 - a lower precision is only an optimisation: fall back to float32
            log.exception("%s classifier failed to load; using float32", self.decision.chosen)
            model = self.exact
        for i, result in zip(rest, model.classify([texts[i] for i in rest]), strict=True):
            results[i] = result
        return results

    def _get(self, name: str) -> Any:
        if name not in self._models:
            self._models[name] = self._loaders[name]()
        return self._models[name]

    def _calibrate(self, sample: list[str]) -> list[dict]:
        probe, others = sample[:PROBE_ROWS], sample[PROBE_ROWS:]
        exact_probe, exact_s = _timed(self.exact, probe)
        exact = exact_probe + (self.exact.classify(others) if others else [])
        trials: dict[str, tuple[list[dict], float]] = {}
        for name in self._loaders:
            try:
                out, seconds = _timed(self._get(name), probe)
            except Exception:  # noqa: BLE001 - a candidate that cannot run is not chosen
                log.exception("%s classifier failed; not a candidate", name)
                continue
            trials[name] = (out, exact_s / max(seconds, 1e-9))
        chosen, measured = "float32", {}
        for name, (out, speed) in sorted(trials.items(), key=lambda kv: -kv[1][1]):  # fastest first
            share = agreement(exact_probe, out)
            if chosen == "float32" and qualifies(share, speed) and others:
                try:
                    out = out + self._get(name).classify(others)
                    share = agreement(exact, out)
                except Exception:  # noqa: BLE001 - as above
                    log.exception("%s classifier failed; not a candidate", name)
                    share = 0.0
            measured[name] = (share, len(out), speed)
            if chosen == "float32" and qualifies(share, speed) and len(out) == len(sample):
                chosen = name
        log.info("Auto precision for %s: %s %s", self.key, chosen, measured)
        with _LOCK:  # a decision stored meanwhile (another session, same model) wins
            decision = _DECISIONS.setdefault(self.key, Decision(chosen, len(sample), measured))
        for name in list(self._models):  # the losers' weights are freed
            if name not in ("float32", decision.chosen):
                loser = self._models.pop(name)
                if self._release is not None:
                    self._release(loser)
        return exact
