"""Precision of a fine-tuned classifier on CSV batches: float32 (exact), int8 (dynamic quantisation) or auto.

int8 is ``torch.ao.quantization.quantize_dynamic`` on the Linear layers (the ModelManager's ``dtype="int8"``):
on a 2-core CPU it runs a MiniLM classifier about 2.4x faster than float32, but it can flip a prediction whose
top two labels are nearly tied, and how often depends on the model. So ``auto`` measures instead of guessing:

* calls with fewer than ``MIN_BATCH_ROWS`` rows (a single text, the tail of a file) always run in float32;
* the first batch call of a model on the CPU classifies its first ``CALIBRATION_ROWS`` rows in both precisions.
  Those rows keep their float32 answers (nothing is lost); if the labels agree on at least ``MIN_AGREEMENT`` of
  them (128 rows: at most one flip), the rest of the rows, and every later batch of that model, run in int8;
  otherwise in float32. The decision is cached per loaded model (model, adapter, device), so it is measured once;
  an int8 model that fails to load or run also means float32;
* on a GPU, auto is the device's usual precision (bfloat16/float16): int8 dynamic quantisation is CPU-only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pipelines.errors import InputError

log = logging.getLogger(__name__)
PRECISIONS = ("auto", "float32", "int8")
CALIBRATION_ROWS = 128
MIN_AGREEMENT = 0.99
MIN_BATCH_ROWS = 32

_DECISIONS: dict[Any, tuple[bool, float, int]] = {}  # fp32 cache key -> (use int8, agreement, rows measured)
_LOCK = threading.Lock()


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


class AutoPrecision:
    """A classifier that answers in float32 and switches its batches to int8 once int8 proved to agree."""

    def __init__(self, exact: Any, load_int8: Callable[[], Any], key: Any) -> None:
        self.exact, self._load_int8, self.key = exact, load_int8, key
        self.labels, self.batch_size = exact.labels, exact.batch_size
        self.window = getattr(exact, "window", exact.batch_size)
        self._int8: Any = None

    @property
    def decision(self) -> tuple[bool, float, int] | None:
        """(int8 chosen, agreement, rows measured) once measured for this model, else None."""
        with _LOCK:
            return _DECISIONS.get(self.key)

    @property
    def chosen(self) -> str | None:
        decision = self.decision
        return None if decision is None else "int8" if decision[0] else "float32"

    def describe(self) -> str:
        """One line for the user: the precision used and why."""
        decision = self.decision
        if decision is None:
            return "Precision: float32 (auto; too few rows to measure int8)."
        use_int8, share, rows = decision
        verdict = "int8" if use_int8 else "float32"
        return f"Precision: {verdict} (auto; int8 agreed with float32 on {share:.1%} of {rows} rows measured)."

    def classify(self, texts: list[str]) -> list[dict]:
        if len(texts) < MIN_BATCH_ROWS:
            return self.exact.classify(texts)
        done: list[dict] = []
        if self.decision is None:
            done = self._calibrate(texts[:CALIBRATION_ROWS])
        rest = texts[len(done):]
        if not rest:
            return done
        model = self.exact
        if self.decision[0]:
            try:
                model = self._get_int8()
            except Exception:  # noqa: BLE001 - int8 is only an optimisation: fall back to float32
                log.exception("int8 classifier failed to load; using float32")
        return done + model.classify(rest)

    def _get_int8(self) -> Any:
        if self._int8 is None:
            self._int8 = self._load_int8()
        return self._int8

    def _calibrate(self, sample: list[str]) -> list[dict]:
        exact = self.exact.classify(sample)
        try:
            share = agreement(exact, self._get_int8().classify(sample))
        except Exception:  # noqa: BLE001 - int8 is only an optimisation: fall back to float32
            log.exception("int8 classifier failed; using float32")
            share = 0.0
        with _LOCK:
            _DECISIONS.setdefault(self.key, (share >= MIN_AGREEMENT, share, len(sample)))
        return exact
