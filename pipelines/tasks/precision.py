"""Precision of a fine-tuned classifier on CSV batches: float32 (exact), bfloat16, int8 (dynamic quantisation), auto.

Which lower precision is fastest depends on the CPU, and whether it changes predictions depends on the model:

* bfloat16 weights run on oneDNN's AMX / AVX-512-BF16 kernels where the CPU has them (about 2.7x float32 for a
  MiniLM classifier on a 2-core Sapphire Rapids) and are emulated, several times slower than float32, where it
  has not (0.10x on an AVX2-only EPYC);
* int8 is ``torch.ao.quantization.quantize_dynamic`` on the Linear layers (1.4-1.7x); it can flip a prediction
  whose top two labels are nearly tied.

So ``auto`` measures instead of guessing, and must never end slower than the float32 batching it replaces, its
own measuring included:

* calls with fewer than ``MIN_BATCH_ROWS`` rows (a single text, the tail of a file) always run in float32;
* a call with fewer than ``DECIDE_ROWS`` rows before any decision runs in float32 and decides nothing (the
  measurement costs about ``CALIBRATION_ROWS`` rows of candidate time, which a smaller file cannot win back);
  the status says so;
* the first large enough batch call of a model on the CPU classifies ``CALIBRATION_ROWS`` of its rows (groups of
  similar length spread over the call's lengths, see :func:`calibration_rows`) in float32; those rows keep their
  float32 answers (nothing is lost). The rows are cut into chunks of ``CHUNK_ROWS``; every chunk is run by
  float32 and by each candidate in alternating order (float32 first, then last, ...), which gives one *paired*
  speed-up per chunk (see :mod:`pipelines.models.precision_probe`). A candidate that flips a label (agreement
  below ``MIN_AGREEMENT``: 64 rows, no flip) or is not faster so far (median below ``REJECT_BELOW``) is dropped at
  once, so it costs no more; one that agrees on every row and whose **median** paired speed-up is at least
  ``MIN_SPEEDUP`` qualifies, and the fastest qualifying one runs the rest of the rows and every later batch of
  that model. float32 is kept when none qualifies;
* bfloat16 is tried only where a bfloat16 Linear of the model's width measures faster than float32 for both a
  small and a large batch (:func:`~pipelines.models.precision_probe.bf16_is_faster`, measured once per width),
  so a CPU without native bfloat16 never pays for a trial;
* the paired speed-ups are kept on disk per CPU and model shape (:mod:`pipelines.tasks.precision_memory`); where
  a candidate is known to clear the margin there, a new model of that shape checks only agreement (float32 and
  the fastest known candidate on the calibration rows), with no timing trials and no bfloat16 probe;
* the decision is cached per loaded model (model, adapter, device) in a :class:`DecisionStore` (``ctx.decisions``)
  shared by every session; a candidate that fails to load or run is simply not chosen;
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
from pipelines.models.precision_probe import median
from pipelines.tasks.precision_memory import SpeedMemory, shape_key

log = logging.getLogger(__name__)


PRECISIONS = tuple(p.value for p in CLASSIFY_PRECISIONS)
CANDIDATES = (Precision.BFLOAT16.value, Precision.INT8.value)  # what auto tries against float32 on the CPU
CALIBRATION_ROWS = 64
PROBE_ROWS = 32  # rows per group of similar length in the calibration sample
CHUNK_ROWS = 16  # rows per timed pair (float32 and each candidate on the same rows), run as the CSV runs them
MIN_AGREEMENT = 0.99
MIN_SPEEDUP = 1.15  # the margin the median paired speed-up must clear
REJECT_BELOW = 1.0  # a candidate whose median paired speed-up so far is below this (not faster) is dropped at once
MIN_BATCH_ROWS = 32
DECIDE_ROWS = 256  # a call must have this many rows to measure on (the trial then pays for itself in the call)
WARMUP_ROWS = 4
BF16_PROBE_ROWS = (32, 512)  # token rows of a small and of a large batch for the bfloat16 gate


@dataclass(frozen=True)
class Decision:
    """What auto chose: ``measured`` maps each candidate to (agreement, rows compared, speed-up over float32)."""

    chosen: str
    rows: int
    measured: dict[str, tuple[float, int, float]] = field(default_factory=dict)
    seconds: float = 0.0  # the calibration's wall time (float32 on its rows, the trials, the bfloat16 probe)
    known: bool = False  # the speed-ups came from earlier measurements on this CPU (only agreement was checked)

    def describe(self) -> Msg:
        """One plain sentence: the precision used and why."""
        if self.chosen != Precision.FLOAT32:
            share, rows, speed = self.measured[self.chosen]
            key = "precision.auto_chosen_known" if self.known else "precision.auto_chosen"
            return Msg.of(key, chosen=self.chosen, agreed=round(share * rows), rows=rows,
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
        self._decisions: dict[Any, Any] = {}  # Decision per model; probe results
        self._lock = threading.Lock()

    def get(self, key: Any) -> Decision | None:
        with self._lock:
            return self._decisions.get(key)

    def setdefault(self, key: Any, decision: Decision) -> Decision:
        """Store ``decision`` unless one is there already (another session measured meanwhile); return the kept one."""
        with self._lock:
            return self._decisions.setdefault(key, decision)

    def remember(self, key: Any, compute: Callable[[], Any]) -> Any:
        """The value kept under ``key``, computed (outside the lock) and kept when there is none yet."""
        with self._lock:
            if key in self._decisions:
                return self._decisions[key]
        value = compute()
        with self._lock:
            return self._decisions.setdefault(key, value)

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
    began = time.perf_counter()
    out = classifier.classify(texts)
    return out, time.perf_counter() - began


def calibration_rows(lengths: list[int]) -> list[int]:
    """Indices of the rows to measure on: ``CALIBRATION_ROWS`` rows in groups of similar length.

    The rows are sorted by length (characters); groups of ``PROBE_ROWS`` neighbours are taken around evenly spaced
    quantiles (the 25th and 75th percentile for two groups), so the sample spans the lengths and each group batches
    without padding (a prefix of the file would be padded to its longest row, slowing float32 down and skewing the
    timings). The group nearest the median comes first.
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


def hardware_gate(store: DecisionStore, loaded: Any) -> Callable[[str], bool]:
    """Which candidates are worth a trial: bfloat16 only where its Linear is faster at this model's width."""
    width = getattr(getattr(getattr(loaded, "model", None), "config", None), "hidden_size", None)

    def allowed(name: str) -> bool:
        if name != Precision.BFLOAT16 or not isinstance(width, int):
            return True
        from pipelines.models.precision_probe import bf16_is_faster

        return bool(store.remember(("bfloat16-probe", width), lambda: bf16_is_faster(width, BF16_PROBE_ROWS)))

    return allowed


@dataclass
class Trial:
    """One candidate during calibration: its answers so far and its paired speed-ups."""

    model: Any
    answers: list[dict] = field(default_factory=list)
    speedups: list[float] = field(default_factory=list)

    def result(self, exact: list[dict]) -> tuple[float, int, float]:
        return agreement(exact[:len(self.answers)], self.answers), len(self.answers), median(self.speedups)


class AutoPrecision:
    """A classifier that answers in float32 and switches its batches to the fastest precision that agrees."""

    def __init__(self, exact: Any, loaders: dict[str, Callable[[], Any]], key: Any, store: DecisionStore,
                 release: Callable[[Any], object] | None = None, gate: Callable[[str], bool] | None = None,
                 memory: SpeedMemory | None = None) -> None:
        self.exact, self._loaders, self.key, self.store, self._release = exact, loaders, key, store, release
        self.memory = memory  # speed-ups kept on disk per CPU and model shape (pipelines.tasks.precision_memory)
        self.labels, self.batch_size = exact.labels, exact.batch_size
        self.window = getattr(exact, "window", exact.batch_size)
        self.loaded = getattr(exact, "loaded", None)
        self.shape = shape_key(getattr(self.loaded, "model", None))
        self.gate = gate or hardware_gate(store, self.loaded)
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
            return Msg.of("precision.auto_too_few", rows=self.too_few, needed=DECIDE_ROWS)
        return Msg.of("precision.auto_pending", needed=DECIDE_ROWS)

    def classify(self, texts: list[str]) -> list[dict]:
        if len(texts) < MIN_BATCH_ROWS:
            return self.exact.classify(texts)
        results: list[dict | None] = [None] * len(texts)
        if self.decision is None:
            if len(texts) < DECIDE_ROWS:  # never decide on a call too small to win the trial back
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

    def measure_speed(self, texts: list[str]) -> Decision:
        """Time the candidates on all of ``texts`` now, whatever their labels (the install step's speed
        measurement, on a model with an untrained head); the decision is kept and returned."""
        self._calibrate(texts, speed_only=True)
        return self.decision

    def _get(self, name: str) -> Any:
        if name not in self._models:
            self._models[name] = self._loaders[name]()
        return self._models[name]

    def _trials(self, warmup: list[str]) -> dict[str, Trial]:
        """The candidates worth a trial, loaded and warmed up (first-call set-up is not what is compared)."""
        trials: dict[str, Trial] = {}
        for name in self._loaders:
            try:
                if self.gate(name):
                    trials[name] = Trial(self._get(name))
                    trials[name].model.classify(warmup)
            except Exception:  # noqa: BLE001 - a candidate that cannot run is not chosen
                log.exception("%s classifier failed; not a candidate", name)
                trials.pop(name, None)
        self.exact.classify(warmup)
        return trials

    def _calibrate(self, sample: list[str], speed_only: bool = False) -> list[dict]:
        began = time.perf_counter()
        known = self.memory.known_speeds(self.shape, MIN_SPEEDUP) if self.memory is not None and not speed_only else {}
        if known:
            return self._verify(sample, known, began)
        trials = self._trials(sample[:WARMUP_ROWS])
        live, measured, exact = dict(trials), {}, []
        for number, start in enumerate(range(0, len(sample), CHUNK_ROWS)):
            chunk = sample[start:start + CHUNK_ROWS]
            order = ["float32", *live] if number % 2 == 0 else [*live, "float32"]  # A B, B A, ...
            seconds: dict[str, float] = {}
            for name in order:
                if name == "float32":
                    out, seconds[name] = _timed(self.exact, chunk)
                    exact += out
                    continue
                try:
                    out, seconds[name] = _timed(live[name].model, chunk)
                    live[name].answers += out
                except Exception:  # noqa: BLE001 - as above
                    log.exception("%s classifier failed; not a candidate", name)
                    measured[name] = (0.0, len(live.pop(name).answers), 0.0)
            for name in [n for n in live if n in seconds]:
                trial = live[name]
                trial.speedups.append(seconds["float32"] / max(seconds[name], 1e-9))
                share, _rows, speed = trial.result(exact)
                if (share < MIN_AGREEMENT and not speed_only) or speed < REJECT_BELOW:  # flipped, or not faster
                    measured[name] = trial.result(exact)
                    del live[name]
        measured.update({name: trial.result(exact) for name, trial in live.items()})
        ok = {name: m for name, m in measured.items() if qualifies(m[0], m[2]) and m[1] == len(sample)}
        chosen = max(ok, key=lambda name: ok[name][2]) if ok else "float32"
        if self.memory is not None:
            self.memory.add(self.shape, {name: trial.speedups for name, trial in trials.items()})
        self._settle(Decision(chosen, len(sample), measured, time.perf_counter() - began))
        return exact

    def _verify(self, sample: list[str], known: dict[str, float], began: float) -> list[dict]:
        """Auto when this CPU's speed-ups for this shape are ``known`` (median per candidate, fastest first):
        float32 on the sample, then the candidates in that order until one agrees (no timing trials, no bfloat16
        probe)."""
        exact = self.exact.classify(sample)
        measured, chosen = {}, "float32"
        for name, speed in known.items():
            try:
                share = agreement(exact, self._get(name).classify(sample))
            except Exception:  # noqa: BLE001 - a candidate that cannot run is not chosen
                log.exception("%s classifier failed; not a candidate", name)
                continue
            measured[name] = (share, len(sample), speed)
            if share >= MIN_AGREEMENT:
                chosen = name
                break
        self._settle(Decision(chosen, len(sample), measured, time.perf_counter() - began, known=True))
        return exact

    def _settle(self, decision: Decision) -> None:
        """Keep ``decision`` (unless another session stored one meanwhile: that one wins); free the losers."""
        log.info("Auto precision for %s: %s %s", self.key, decision.chosen, decision.measured)
        decision = self.store.setdefault(self.key, decision)
        for name in list(self._models):  # the losers' weights are freed
            if name not in ("float32", decision.chosen):
                loser = self._models.pop(name)
                if self._release is not None:
                    self._release(loser)
