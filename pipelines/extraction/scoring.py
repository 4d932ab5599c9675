"""Shared scoring of candidate spans: type priors, overlap with the question, and the LM's likelihood of a span."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipelines.extraction.spans import Span, content_words

TYPE_BONUS = 3.0  # a span of the expected type (minus RANK_STEP per rank in the expected list)
RANK_STEP = 0.8
WRONG_TYPE = -2.0  # a span of another type when a type is expected
LM_WEIGHT = 0.45  # times the mean log-probability per token of the span as the LM's answer
LM_FLOOR = -4.0  # the LM can take at most LM_WEIGHT * 4 off a span (relative to its favourite)
MAX_SCORED = 8  # spans the LM scores (the best by prior)


def type_prior(span: Span, expected: Sequence[str]) -> float:
    """Bonus for a span of an expected label; a noun chunk holding a number counts as a quantity."""
    if not expected:
        return 0.0
    label = span.label
    if label == "NP" and any(ch.isdigit() for ch in span.text) and "CARDINAL" in expected:
        label = "QUANTITY"
    if label in expected:
        return TYPE_BONUS - RANK_STEP * list(expected).index(label)
    return WRONG_TYPE


def question_overlap(span: Span, words: set[str]) -> float | None:
    """Share of the span's words already in the question; None when the span only repeats the question."""
    own = content_words(span.text)
    if not own:
        return 0.0
    shared = len(own & words) / len(own)
    return None if shared >= 1.0 else shared


def lm_span_scores(lm: Any, prompt: str, spans: Sequence[Span]) -> list[float] | None:
    """Mean log-probability per token of each span as the LM's reply to ``prompt`` (higher is likelier).

    ``lm`` is a :class:`~pipelines.generation.task_lm.TaskLM` (or a loaded causal LM); None when it cannot score
    fixed replies (a remote model).
    """
    from pipelines.generation.task_lm import as_task_lm

    lm = as_task_lm(lm)
    if not spans or lm is None:
        return [0.0] * len(spans)
    texts = [s.text[:1].upper() + s.text[1:] for s in spans]  # a reply starts with a capital letter
    sums = lm.label_logliks(prompt, texts)
    if sums is None:
        return None
    sizes = [max(1, lm.count_tokens(t)) for t in texts]
    return [total / size for total, size in zip(sums, sizes, strict=True)]


def best_by_lm(lm: Any, prompt: str, scored: list[tuple[float, Span]]) -> list[tuple[float, Span]]:
    """``(prior, span)`` pairs re-ranked by prior + LM score (the LM scores the top :data:`MAX_SCORED` only; an
    LM that cannot score leaves the priors alone)."""
    ranked = sorted(scored, key=lambda pair: -pair[0])
    top = ranked[:MAX_SCORED]
    if lm is None or len(top) < 2:
        return top
    lm_scores = lm_span_scores(lm, prompt, [span for _, span in top])
    if lm_scores is None:
        return top
    best = max(lm_scores)
    rescored = [(prior + LM_WEIGHT * max(s - best, LM_FLOOR), span)
                for (prior, span), s in zip(top, lm_scores, strict=True)]
    return sorted(rescored, key=lambda pair: -pair[0])
