"""Precision of a fine-tuned classifier on CSV batches: float32 (exact), bfloat16, int8 (dynamic quantisation), auto.

Which lower precision is fastest depends on the CPU, and whether it changes predictions depends on the model:

* bfloat16 weights run on oneDNN's AMX / AVX-512-BF16 kernels where the CPU has them (about 2.7x float32 for a
  MiniLM classifier on a 2-core Sapphire Rapids) and are emulated, slower than float32, where it has not;
* int8 is ``torch.ao.quantization.quantize_dynamic`` on the Linear layers (about 1.7x there); it can flip a
  prediction whose top two labels are nearly tied.

So ``auto`` measures instead of guessing:

* calls with fewer than ``MIN_BATCH_ROWS`` rows (a single text, the tail of a file) always run in float32;
* a call with fewer than ``CALIBRATION_ROWS`` rows before any decision (a small file) runs in float32 and decides
  nothing: a decision is only ever made, and cached, on the promised ``CALIBRATION_ROWS`` rows (the status says so);
* the first batch call of a model on the CPU classifies ``CALIBRATION_ROWS`` of its rows (groups of similar length
  spread over the call's lengths, see :func:`calibration_rows`) in float32; those rows keep their float32 answers
  (nothing is lost). Every candidate in ``CANDIDATES`` is timed against float32 on one group (``PROBE_ROWS``).
  Fastest first, a candidate that is at least ``MIN_SPEEDUP`` times faster and agrees on the probe then classifies
  the other calibration rows too; if it agrees with float32 on at least ``MIN_AGREEMENT`` of all of them (64 rows:
  no flip), it runs the rest of the rows and every later batch of that model. Otherwise the next candidate is
  checked the same way, and float32 is kept when none qualifies. Only the winner pays for the full check.
  (64 rows with no flip rejects a candidate that flips 2% of rows as often as 128 rows with at most one flip would,
  73% of the time, at half the cost.) The decision is cached per loaded model (model, adapter, device), so it is
  measured once; it lives in a :class:`DecisionStore` (``ctx.decisions``) shared by every session; a candidate that
  fails to load or run is simply not chosen;
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
from pipelines.messages import Msg
from pipelines.models.kinds import CLASSIFY_PRECISIONS, Precision

log = logging.getLogger(__name__)


PRECISIONS = tuple(p.value for p in CLASSIFY_PRECISIONS)
CANDIDATES = (Precision.BFLOAT16.value, Precision.INT8.value)  # what auto tries against float32 on the CPU
CALIBRATION_ROWS = 64
PROBE_ROWS = 32  # rows (one group) every candidate is timed on
MIN_AGREEMENT = 0.99
MIN_SPEEDUP = 1.15
MIN_BATCH_ROWS = 32
WARMUP_ROWS = 4


@dataclass(frozen=True)
class Decision:
    """What auto chose: ``measured`` maps each candidate to (agreement, rows compared, speed-up over float32)."""

    chosen: str
    rows: int
    measured: dict[str, tuple[float, int, float]] = field(default_factory=dict)

    def describe(self) -> Msg:
        """One plain sentence: the precision used and why."""
        if self.chosen != Precision.FLOAT32:
            share, rows, speed = self.measured[self.chosen]
            return Msg.of("precision.auto_chosen", chosen=self.chosen, agreed=round(share * rows), rows=rows,
                          speed=f"{speed:.1f}")
        if not self.measured:
            return Msg.of("precision.auto_none_ran")
        name, (share, rows, speed) = max(self.measured.items(), key=lambda kv: kv[1][2])  # the fastest candidate
        if speed < MIN_SPEEDUP:
            return Msg.of("precision.auto_not_faster", name=name, speed=f"{speed:.1f}")
        return Msg.of("precision.auto_disagreed", name=name, speed=f"{speed:.1f}", agreed=round(share * rows),
                      rows=rows)


class DecisionStore:
    """Auto-precision decisions per loaded model, shared by every session (``ctx.decisions``); thread-safe."""

    def __init__(self) -> None:
        self._decisions: dict[Any, Decision] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Decision | None:
        with self._lock:
            return self._decisions.get(key)

    def setdefault(self, key: Any, decision: Decision) -> Decision:
        """Store ``decision`` unless one is there already (another session measured meanwhile); return the kept one."""
        with self._lock:
            return self._decisions.setdefault(key, decision)

    def clear(self) -> None:
        with self._lock:
            self._decisions.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._decisions)


def check_precision(precision: str | None) -> Precision:
    """``precision`` (None or empty means auto), or a clear error."""
    value = (precision or "auto").strip().lower()
    if value not in PRECISIONS:
        raise InputError("precision.unknown", precision=value, choices=", ".join(PRECISIONS))
    return Precision(value)


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

    def __init__(self, exact: Any, loaders: dict[str, Callable[[], Any]], key: Any, store: DecisionStore,
                 release: Callable[[Any], object] | None = None) -> None:
        self.exact, self._loaders, self.key, self.store, self._release = exact, loaders, key, store, release
        self.labels, self.batch_size = exact.labels, exact.batch_size
        self.window = getattr(exact, "window", exact.batch_size)
        self.loaded = getattr(exact, "loaded", None)
        self.too_few = 0  # rows of the largest call that came before any decision and was too small to decide on
        self._models: dict[str, Any] = {"float32": exact}

    @property
    def decision(self) -> Decision | None:
        """The measured decision for this model, or None before the first large enough batch."""
        return self.store.get(self.key)

    @property
    def chosen(self) -> str | None:
        decision = self.decision
        return None if decision is None else decision.chosen

    def describe(self) -> Msg:
        """One plain sentence for the user: the precision used and why."""
        decision = self.decision
        if decision is not None:
            return decision.describe()
        if self.too_few:
            return Msg.of("precision.auto_too_few", rows=self.too_few, needed=CALIBRATION_ROWS)
        return Msg.of("precision.auto_pending", needed=CALIBRATION_ROWS)

    def classify(self, texts: list[str]) -> list[dict]:
        if len(texts) < MIN_BATCH_ROWS:
            return self.exact.classify(texts)
        results: list[dict | None] = [None] * len(texts)
        if self.decision is None:
            if len(texts) < CALIBRATION_ROWS:  # never decide (for every later session too) on fewer rows
                self.too_few = max(self.too_few, len(texts))
                return self.exact.classify(texts)
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

    def _trials(self, probe: list[str], exact_s: float) -> dict[str, tuple[list[dict], float]]:
        """Each candidate's answers on the probe and its speed-up over float32 (candidates that fail are left out)."""
        trials: dict[str, tuple[list[dict], float]] = {}
        for name in self._loaders:
            try:
                out, seconds = _timed(self._get(name), probe)
            except Exception:  # noqa: BLE001 - a candidate that cannot run is not chosen
                log.exception("%s classifier failed; not a candidate", name)
                continue
            trials[name] = (out, exact_s / max(seconds, 1e-9))
        return trials

    def _calibrate(self, sample: list[str]) -> list[dict]:
        probe, others = sample[:PROBE_ROWS], sample[PROBE_ROWS:]
        exact_probe, exact_s = _timed(self.exact, probe)
        exact = exact_probe + (self.exact.classify(others) if others else [])
        chosen, measured = "float32", {}
        for name, (out, speed) in sorted(self._trials(probe, exact_s).items(), key=lambda kv: -kv[1][1]):
            share = agreement(exact_probe, out)  # fastest first
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
        # a decision stored meanwhile (another session, same model) wins
        decision = self.store.setdefault(self.key, Decision(chosen, len(sample), measured))
        for name in list(self._models):  # the losers' weights are freed
            if name not in ("float32", decision.chosen):
                loser = self._models.pop(name)
                if self._release is not None:
                    self._release(loser)
        return exact
