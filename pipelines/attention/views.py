"""Everything the Attention tab shows for one result, plus the JSON the ``attention`` API returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from pipelines.attention import analysis, figures
from pipelines.attention.bertviz_html import BertvizOptions, BertvizView, head_view_html, model_view_html
from pipelines.attention.extract import AttentionResult
from pipelines.errors import InputError

TOP_HEADS = 12
JSON_DECIMALS = 6
MAX_JSON_VALUES = 6_000_000  # ~50 MB of JSON; e.g. every layer and head of MiniLM at 256 tokens fits


@dataclass
class Selection:
    """Which layer, head and token the detailed views show (head -1 = mean over heads)."""

    layer: int = 0
    head: int = 0
    token: int = 0

    def clamp(self, result: AttentionResult) -> Selection:
        """The same selection moved into range for ``result``."""
        return Selection(
            layer=min(max(int(self.layer), 0), result.num_layers - 1),
            head=min(max(int(self.head), -1), result.num_heads - 1),
            token=min(max(int(self.token), 0), result.num_tokens - 1),
        )


@dataclass
class PlotViews:
    """The plotly figures for one selection."""

    head: go.Figure
    mean: go.Figure
    grid: go.Figure
    rollout: go.Figure
    token: go.Figure


@dataclass
class AttentionViews:
    """The bertviz documents, the plotly figures and the notes for one result."""

    head_view: BertvizView
    model_view: BertvizView
    plots: PlotViews
    notes: list[str] = field(default_factory=list)

    @property
    def html_bytes(self) -> int:
        return self.head_view.size_bytes + self.model_view.size_bytes


def summary(result: AttentionResult) -> str:
    """One line describing the result: model, tokens, layers x heads, and whether it is causal."""
    kind = "decoder (causal)" if result.causal else "bidirectional"
    return (
        f"**{result.model}** ({result.model_type or 'model'}, {kind} {result.part}): {result.num_tokens} tokens, "
        f"{result.num_layers} layers x {result.num_heads} heads."
    )


def notes_markdown(result: AttentionResult, extra: list[str] | None = None) -> str:
    """The summary plus every note (the token cap first) as Markdown."""
    lines = [summary(result)] + [f"- {note}" for note in [*result.notes, *(extra or [])]]
    return "\n".join(lines)


def plot_views(result: AttentionResult, selection: Selection) -> PlotViews:
    """The plotly figures for ``selection`` (cheap: no model call, no bertviz)."""
    sel = selection.clamp(result)
    labels = result.labels
    head = None if sel.head < 0 else sel.head
    head_name = "mean over heads" if head is None else f"head {head}"
    matrix = analysis.head_matrix(result, sel.layer, head)
    rolled = analysis.rollout(result.attentions[: sel.layer + 1])[-1]
    profile = analysis.token_profile(result, sel.layer, head, sel.token)
    return PlotViews(
        head=figures.heatmap(matrix, labels, f"Layer {sel.layer}, {head_name}", causal=result.causal),
        mean=figures.heatmap(
            analysis.head_matrix(result, sel.layer, None), labels, f"Layer {sel.layer}, mean over heads",
            causal=result.causal,
        ),
        grid=figures.grid(result.attentions, "Every layer x head (each tile scaled to its own maximum)"),
        rollout=figures.heatmap(rolled, labels, f"Attention rollout through layers 0-{sel.layer}",
                                causal=result.causal),
        token=figures.token_bars(profile, labels, f"Token {labels[sel.token]!r}, layer {sel.layer}, {head_name}"),
    )


def build_views(
    result: AttentionResult, selection: Selection | None = None, options: BertvizOptions | None = None,
) -> AttentionViews:
    """Every view of the Attention tab for ``result``."""
    sel = (selection or Selection()).clamp(result)
    head_doc = head_view_html(result, sel.layer, options)
    model_doc = model_view_html(result, options)
    notes = [f"bertviz {view.kind} view {note}" for view in (head_doc, model_doc) for note in view.notes]
    return AttentionViews(head_doc, model_doc, plot_views(result, sel), notes)


def compare_figures(comparison: analysis.Comparison, labels: list[str], layer: int, head: int) -> dict[str, Any]:
    """Difference heatmap of one head, the layers x heads grid of differences, and the most-changed heads."""
    layers, heads = comparison.diff.shape[:2]
    layer = min(max(int(layer), 0), layers - 1)
    head = min(max(int(head), 0), heads - 1)
    title = f"{comparison.model_b} minus {comparison.model_a}: layer {layer}, head {head}"
    return {
        "head": figures.heatmap(comparison.diff[layer, head], labels, title, diverging=True),
        "grid": figures.grid(comparison.diff, "Difference per layer x head (B - A)", normalise=False,
                             diverging=True),
        "top": comparison.top_heads(TOP_HEADS),
        "max_abs": float(np.abs(comparison.diff).max()),
    }


def _rounded(values: np.ndarray) -> list:
    return np.round(values.astype(np.float64), JSON_DECIMALS).tolist()


def attention_json(result: AttentionResult, layer: int = -1, head: int = -1) -> dict[str, Any]:
    """The API's answer: tokens, sizes, and the weights of one layer/head (-1 means all of them).

    ``weights`` is nested lists with the dimensions named in ``weights_shape``: ``[layers][heads][query][key]``
    with the selected ones dropped (e.g. layer 2, head 3 gives ``[query][key]``).
    """
    all_layers = layer is None or int(layer) < 0
    all_heads = head is None or int(head) < 0
    layer_i, head_i = analysis.check_layer_head(
        result, 0 if all_layers else int(layer), None if all_heads else int(head)
    )
    count = (result.num_layers if all_layers else 1) * (result.num_heads if all_heads else 1) * result.num_tokens**2
    if count > MAX_JSON_VALUES:
        raise InputError(
            f"That would return {count:,} weights (more than {MAX_JSON_VALUES:,}); ask for one layer "
            "(and/or one head) or fewer tokens."
        )
    values = result.attentions if all_layers else result.attentions[layer_i]
    dims = (["layer"] if all_layers else []) + ["head", "query", "key"]
    if not all_heads:
        values = values[:, head_i] if all_layers else values[head_i]
        dims.remove("head")
    return {
        "model": result.model,
        "model_type": result.model_type,
        "part": result.part,
        "tokens": result.tokens,
        "num_tokens": result.num_tokens,
        "total_tokens": result.total_tokens,
        "truncated": result.truncated,
        "max_tokens": result.max_tokens,
        "sentence_b_start": result.sentence_b_start,
        "num_layers": result.num_layers,
        "num_heads": result.num_heads,
        "causal": result.causal,
        "layer": None if all_layers else layer_i,
        "head": None if all_heads else head_i,
        "weights_shape": dims,
        "weights": _rounded(values),
        "notes": result.notes,
    }
