"""Numbers derived from attention weights: means, rollout, pooled thumbnails, per-token views, comparisons."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.attention.extract import AttentionResult
from pipelines.errors import InputError


def check_layer_head(result: AttentionResult, layer: int, head: int | None) -> tuple[int, int | None]:
    """Validate a layer index and a head index (None = every head / the mean)."""
    try:
        layer = int(layer)
        head = None if head is None or int(head) < 0 else int(head)
    except (TypeError, ValueError):
        raise InputError("attention.err.whole_numbers") from None
    if not 0 <= layer < result.num_layers:
        raise InputError("attention.err.no_layer", layer=layer, last=result.num_layers - 1)
    if head is not None and not 0 <= head < result.num_heads:
        raise InputError("attention.err.no_head", head=head, last=result.num_heads - 1)
    return layer, head


def head_matrix(result: AttentionResult, layer: int, head: int | None) -> np.ndarray:
    """The (tokens, tokens) matrix of one head, or the mean over heads when ``head`` is None."""
    layer, head = check_layer_head(result, layer, head)
    if head is None:
        return result.attentions[layer].mean(axis=0)
    return result.attentions[layer, head]


def rollout(attentions: np.ndarray, residual: bool = True) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): multiply head-averaged attention through the layers.

    With ``residual`` each layer's matrix is ``0.5 * A + 0.5 * I`` (the skip connection), rows renormalised.
    Returns a (layers, tokens, tokens) array: entry ``l`` is the rollout up to and including layer ``l``.
    """
    mean = attentions.astype(np.float64).mean(axis=1)
    n = mean.shape[-1]
    out = np.empty_like(mean)
    joint = np.eye(n)
    for index, layer in enumerate(mean):
        step = 0.5 * layer + 0.5 * np.eye(n) if residual else layer
        step = step / step.sum(axis=-1, keepdims=True)
        joint = step @ joint
        out[index] = joint
    return out.astype(np.float32)


def pool(matrix: np.ndarray, size: int) -> np.ndarray:
    """Average-pool a square matrix down to at most ``size`` x ``size`` cells (thumbnails)."""
    n = matrix.shape[-1]
    if n <= size:
        return matrix
    edges = np.linspace(0, n, size + 1).round().astype(int)
    rows = np.add.reduceat(matrix, edges[:-1], axis=-2) / np.diff(edges)[:, None]
    return np.add.reduceat(rows, edges[:-1], axis=-1) / np.diff(edges)[None, :]


def token_profile(result: AttentionResult, layer: int, head: int | None, token: int) -> dict:
    """What ``token`` attends to (its row) and what attends to it (its column)."""
    matrix = head_matrix(result, layer, head)
    if not 0 <= int(token) < result.num_tokens:
        raise InputError("attention.err.no_token", token=token, last=result.num_tokens - 1)
    token = int(token)
    return {"token": token, "attends_to": matrix[token].tolist(), "attended_by": matrix[:, token].tolist()}


@dataclass
class Comparison:
    """Attention of model B minus model A for the same tokens."""

    tokens: list[str]
    diff: np.ndarray  # (layers, heads, tokens, tokens), B - A
    model_a: str
    model_b: str

    def head_scores(self) -> np.ndarray:
        """Per (layer, head): mean over query tokens of the total-variation distance between the rows (0..1)."""
        return 0.5 * np.abs(self.diff).sum(axis=-1).mean(axis=-1)

    def top_heads(self, count: int = 10) -> list[dict]:
        """The heads whose attention changed most, largest change first."""
        scores = self.head_scores()
        max_abs = np.abs(self.diff).max(axis=(-1, -2))
        order = np.argsort(scores, axis=None)[::-1][:count]
        rows = []
        for flat in order:
            layer, head = np.unravel_index(flat, scores.shape)
            rows.append({
                "layer": int(layer), "head": int(head),
                "mean_tv_distance": round(float(scores[layer, head]), 5),
                "max_abs_diff": round(float(max_abs[layer, head]), 5),
            })
        return rows


def compare(a: AttentionResult, b: AttentionResult) -> Comparison:
    """Difference of two models' attention on the same text; they must share tokens and shapes."""
    if a.tokens != b.tokens:
        raise InputError("attention.err.tokens_differ")
    if a.attentions.shape != b.attentions.shape:
        raise InputError("attention.err.shapes_differ", a_layers=a.num_layers, a_heads=a.num_heads,
                         b_layers=b.num_layers, b_heads=b.num_heads)
    return Comparison(a.tokens, b.attentions - a.attentions, a.model, b.model)
