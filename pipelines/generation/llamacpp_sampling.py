"""Token choice for the llama.cpp engine, in numpy, with the transformers path's semantics.

The engine reads the last position's logits from llama.cpp (``llama_get_logits_ith``) and this module turns them
into the token view's numbers (softmax at temperature 1, before any penalty: the model's own confidence) and into
the next token: greedy, or sampled after transformers' processors in their order (repetition penalty over every
token seen, temperature, top-k, top-p), with a numpy generator seeded from the settings' seed, so the same seed
gives the same text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipelines.generation.settings import GenerationSettings

TOP_ALTERNATIVES = 5


@dataclass(frozen=True)
class Pick:
    """One chosen token with the distribution the token view shows."""

    token_id: int
    prob: float
    top_ids: list[int]
    top_probs: list[float]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from raw logits (float64, so they sum to 1 within rounding)."""
    shifted = logits.astype(np.float64) - float(np.max(logits))
    exp = np.exp(shifted)
    return exp / exp.sum()


def largest(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, largest first (ties: lower index first).

    ``np.argpartition`` over a 49k vocabulary took ~2 ms a call here (a tenth of a decoding step); a few argmax
    passes take ~0.1 ms for the token view's five, and ``torch.topk`` (torch is loaded in the process that
    generates) ~0.3 ms for more.
    """
    k = max(1, min(k, values.shape[-1]))
    if k <= 8:
        rest = values.astype(np.float32, copy=True)
        out = np.empty(k, dtype=np.int64)
        for i in range(k):
            out[i] = int(np.argmax(rest))
            rest[out[i]] = -np.inf
        return out
    import torch

    return torch.topk(torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)), k).indices.numpy()


def log_normaliser(logits: np.ndarray) -> tuple[float, float]:
    """(max, log of the sum of exp(logits - max)): log p(i) = logits[i] - max - log-sum."""
    top = float(np.max(logits))
    return top, float(np.log(np.exp(logits - top, dtype=np.float32).sum(dtype=np.float64)))


def top_k(probs: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """The ``k`` most likely ids and their probabilities, most likely first."""
    idx = largest(probs, k)
    return [int(i) for i in idx], [float(probs[i]) for i in idx]


class Sampler:
    """Chooses each next token from raw logits (``settings`` already resolved for the prompt's mode)."""

    def __init__(self, settings: GenerationSettings, seed: int, prompt_ids: list[int],
                 alternatives: int = TOP_ALTERNATIVES) -> None:
        self.sample = bool(settings.do_sample)
        self.temperature = float(settings.temperature or 1.0)
        self.top_k = int(settings.top_k or 0)
        self.top_p = float(settings.top_p if settings.top_p is not None else 1.0)
        self.penalty = float(settings.repetition_penalty or 1.0)
        self.alternatives = alternatives
        self.rng = np.random.default_rng(seed)
        self.seen = np.zeros(0, dtype=np.int64)
        self._seen_set: set[int] = set()
        for token in prompt_ids:
            self._remember(token)

    def _remember(self, token: int) -> None:
        if token not in self._seen_set:
            self._seen_set.add(token)
            self.seen = np.append(self.seen, token)

    def __call__(self, logits: np.ndarray) -> Pick:
        """The next token for ``logits`` (the view's probabilities come from the raw logits)."""
        top, log_sum = log_normaliser(logits)
        top_ids = [int(i) for i in largest(logits, self.alternatives)]
        token = self.choose(logits) if (self.sample or self.penalty != 1.0) else top_ids[0]
        self._remember(token)

        def prob(i: int) -> float:
            return math.exp(float(logits[i]) - top - log_sum)

        return Pick(token, prob(token), top_ids, [prob(i) for i in top_ids])

    def choose(self, logits: np.ndarray) -> int:
        """The processed choice: repetition penalty, then greedy or temperature/top-k/top-p sampling."""
        scores = logits.astype(np.float32, copy=True)
        if self.penalty != 1.0 and self.seen.size:
            picked = scores[self.seen]
            scores[self.seen] = np.where(picked < 0, picked * self.penalty, picked / self.penalty)
        if not self.sample:
            return int(np.argmax(scores))
        scores /= self.temperature
        candidates = np.arange(scores.shape[-1])
        if 0 < self.top_k < scores.shape[-1]:
            candidates = largest(scores, self.top_k)
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        probs = softmax(scores[order])
        if self.top_p < 1.0:
            # transformers' TopPLogitsWarper: drop the tail whose cumulative share is <= 1 - top_p (keep one).
            keep = np.cumsum(probs[::-1])[::-1] > 1.0 - self.top_p
            keep[0] = True
            order, probs = order[keep], probs[keep] / probs[keep].sum()
        return int(order[self.rng.choice(order.shape[0], p=probs)])
