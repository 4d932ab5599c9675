"""Seeded bootstrap: 95% percentile intervals per metric and paired-bootstrap p-values between two models.

A :class:`Statistic` turns the rows of one model into a number for any resample of row indices, so every
model is resampled with the *same* indices (a paired test). Resamples are drawn as row counts (multinomial),
which lets sums be one matrix product.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENCE = 0.95


class Statistic:
    """A metric over rows: ``value(weights)`` where ``weights[b, i]`` counts row ``i`` in resample ``b``."""

    def values(self, weights: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def point(self, n: int) -> float:
        return float(self.values(np.ones((1, n)))[0])


@dataclass
class MeanStat(Statistic):
    """The mean of per-row values (accuracy, exact match, ROUGE, length)."""

    rows: np.ndarray

    def values(self, weights: np.ndarray) -> np.ndarray:
        return weights @ self.rows / weights.sum(axis=1)


@dataclass
class RatioStat(Statistic):
    """``transform(sum(num) / sum(den))`` over rows (perplexity: exp of total NLL per token)."""

    num: np.ndarray
    den: np.ndarray
    transform: Callable[[np.ndarray], np.ndarray] = np.asarray

    def values(self, weights: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.transform((weights @ self.num) / np.maximum(weights @ self.den, 1e-12))


@dataclass
class SumStat(Statistic):
    """A corpus score computed from summed per-row statistics (sacrebleu's BLEU and chrF)."""

    stats: np.ndarray
    score: Callable[[np.ndarray], float]

    def values(self, weights: np.ndarray) -> np.ndarray:
        summed = np.rint(weights @ self.stats).astype(np.int64)
        return np.asarray([self.score(row) for row in summed])


@dataclass
class MacroF1Stat(Statistic):
    """Macro-F1 over the true labels present (codes ``0..k-1``), from weighted confusion counts."""

    truth: np.ndarray
    predicted: np.ndarray
    k: int

    def values(self, weights: np.ndarray) -> np.ndarray:
        cells = self.truth * self.k + self.predicted
        out = np.empty(weights.shape[0])
        for b, w in enumerate(weights):
            matrix = np.bincount(cells, weights=w, minlength=self.k * self.k).reshape(self.k, self.k)
            tp, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
            denom = support + predicted
            f1 = np.divide(2 * tp, denom, out=np.zeros(self.k), where=denom > 0)
            out[b] = f1[support > 0].mean() if (support > 0).any() else 0.0
        return out


def resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """``resamples x n`` counts of each row in each bootstrap resample (seeded: same seed, same resamples)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95% percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def as_dict(self, digits: int = 4) -> dict[str, float]:
        return {"value": _round(self.value, digits), "low": _round(self.low, digits), "high": _round(self.high, digits)}


def _round(x: float, digits: int) -> Any:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def interval(stat: Statistic, weights: np.ndarray) -> Interval:
    """The point estimate on all rows and the percentile interval over the resamples (NaNs ignored)."""
    n = weights.shape[1]
    value = stat.point(n)
    draws = stat.values(weights)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return Interval(value, value, value)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(value, float(min(low, value)), float(max(high, value)))


def paired_p_value(a: Statistic, b: Statistic, weights: np.ndarray) -> float:
    """Two-sided paired-bootstrap p-value of the difference ``a - b`` (shifted to the null hypothesis).

    p is the share of resamples whose difference is at least as far from the observed one as the observed one
    is from zero (Berg-Kirkpatrick et al. 2012), with the usual +1 correction. Identical models give 1.
    """
    n = weights.shape[1]
    observed = a.point(n) - b.point(n)
    deltas = a.values(weights) - b.values(weights)
    deltas = deltas[np.isfinite(deltas)]
    if deltas.size == 0 or not math.isfinite(observed):
        return 1.0
    extreme = np.sum(np.abs(deltas - observed) >= abs(observed) - 1e-12)
    return float((extreme + 1) / (deltas.size + 1))
