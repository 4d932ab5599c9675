"""Everything the Attention tab shows for one result, plus the JSON the ``attention`` API returns.

Texts are rendered in the language asked for (``lang``); the API's JSON keeps its English machine names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from pipelines.attention import analysis, figures
from pipelines.attention.bertviz_html import BertvizOptions, BertvizView, head_view_html, model_view_html
from pipelines.attention.extract import AttentionResult
from pipelines.errors import InputError
from pipelines.messages import Msg, render

TOP_HEADS = 12
TOP_COLUMNS = ("layer", "head", "mean_tv_distance", "max_abs_diff")  # the API's table columns (English headers)
TOP_HEADER_KEYS = ("attention.col.layer", "attention.col.head", "attention.col.mean_tv_distance",
                   "attention.col.max_abs_diff")
JSON_DECIMALS = 6
MAX_JSON_VALUES = 6_000_000  # ~50 MB of JSON; e.g. every layer and head of MiniLM at 256 tokens fits


def text(key: str, lang: str, **params: object) -> str:
    """The locale text of ``key`` in ``lang``."""
    return render(key, lang, params)


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

    def as_tuple(self) -> tuple[go.Figure, ...]:
        """In the order the tab's outputs list them."""
        return self.head, self.mean, self.grid, self.rollout, self.token


@dataclass
class AttentionViews:
    """The bertviz documents, the plotly figures and the notes for one result."""

    head_view: BertvizView
    model_view: BertvizView
    plots: PlotViews
    notes: list[Msg] = field(default_factory=list)

    @property
    def html_bytes(self) -> int:
        return self.head_view.size_bytes + self.model_view.size_bytes


@dataclass
class CompareView:
    """What the comparison shows: a summary, two figures and the most-changed heads."""

    summary: str
    head: go.Figure
    grid: go.Figure
    rows: list[list[Any]]
    headers: list[str]
    max_abs: float


def summary(result: AttentionResult, lang: str = "en") -> str:
    """One line describing the result: model, tokens, layers x heads, and whether it is causal."""
    kind = Msg.of("attention.kind.causal" if result.causal else "attention.kind.bidirectional")
    model_type = result.model_type or Msg.of("attention.model_type_unknown")
    return text("attention.summary", lang, model=result.model, model_type=model_type, kind=kind,
                part=result.part.msg, tokens=result.num_tokens, layers=result.num_layers, heads=result.num_heads)


def notes_markdown(result: AttentionResult, extra: list[Msg] | None = None, lang: str = "en") -> str:
    """The summary plus every note (the token cap first) as Markdown."""
    notes = [*result.notes, *(extra or [])]
    return "\n".join([summary(result, lang)] + [f"- {note.render(lang)}" for note in notes])


def _head_name(head: int | None, lang: str) -> str:
    return text("attention.fig.mean_heads", lang) if head is None else text("attention.fig.head_n", lang, head=head)


def plot_views(result: AttentionResult, selection: Selection, lang: str = "en") -> PlotViews:
    """The plotly figures for ``selection`` (cheap: no model call, no bertviz)."""
    sel = selection.clamp(result)
    labels = result.labels
    head = None if sel.head < 0 else sel.head
    head_name = _head_name(head, lang)
    matrix = analysis.head_matrix(result, sel.layer, head)
    rolled = analysis.rollout(result.attentions[: sel.layer + 1])[-1]
    profile = analysis.token_profile(result, sel.layer, head, sel.token)
    layer_title = text("attention.fig.layer_title", lang, layer=sel.layer, head=head_name)
    mean_title = text("attention.fig.layer_title", lang, layer=sel.layer, head=_head_name(None, lang))
    return PlotViews(
        head=figures.heatmap(matrix, labels, layer_title, causal=result.causal, lang=lang),
        mean=figures.heatmap(analysis.head_matrix(result, sel.layer, None), labels, mean_title,
                             causal=result.causal, lang=lang),
        grid=figures.grid(result.attentions, text("attention.fig.grid", lang), lang=lang),
        rollout=figures.heatmap(rolled, labels, text("attention.fig.rollout", lang, layer=sel.layer),
                                causal=result.causal, lang=lang),
        token=figures.token_bars(profile, labels, text("attention.fig.token_title", lang, token=labels[sel.token],
                                                      layer=sel.layer, head=head_name), lang=lang),
    )


def build_views(
    result: AttentionResult, selection: Selection | None = None, options: BertvizOptions | None = None,
    lang: str = "en",
) -> AttentionViews:
    """Every view of the Attention tab for ``result``."""
    sel = (selection or Selection()).clamp(result)
    head_doc = head_view_html(result, sel.layer, options, lang)
    model_doc = model_view_html(result, options, lang)
    notes = [note for view in (head_doc, model_doc) for note in view.notes]
    return AttentionViews(head_doc, model_doc, plot_views(result, sel, lang), notes)


def compare_figures(comparison: analysis.Comparison, labels: list[str], layer: int, head: int,
                    lang: str = "en") -> dict[str, Any]:
    """Difference heatmap of one head, the layers x heads grid of differences, and the most-changed heads."""
    layers, heads = comparison.diff.shape[:2]
    layer = min(max(int(layer), 0), layers - 1)
    head = min(max(int(head), 0), heads - 1)
    title = text("attention.fig.diff_head", lang, model_b=comparison.model_b, model_a=comparison.model_a,
                 layer=layer, head=head)
    return {
        "head": figures.heatmap(comparison.diff[layer, head], labels, title, diverging=True, lang=lang),
        "grid": figures.grid(comparison.diff, text("attention.fig.diff_grid", lang), normalise=False,
                             diverging=True, lang=lang),
        "top": comparison.top_heads(TOP_HEADS),
        "max_abs": float(np.abs(comparison.diff).max()),
    }


def compare_view(first: AttentionResult, second: AttentionResult, layer: int, head: int,
                 lang: str = "en") -> CompareView:
    """Model B (``second``) minus model A (``first``): summary, figures and the top-heads table."""
    figs = compare_figures(analysis.compare(first, second), first.labels, layer, head, lang)
    lines = [text("attention.compare_summary", lang, model_b=second.model, model_a=first.model,
                  tokens=first.num_tokens, max_abs=f"{figs['max_abs']:.4f}")]
    lines += [f"- {note.render(lang)}" for note in first.notes]
    rows = [[row[c] for c in TOP_COLUMNS] for row in figs["top"]]
    headers = [text(key, lang) for key in TOP_HEADER_KEYS]
    return CompareView("\n".join(lines), figs["head"], figs["grid"], rows, headers, figs["max_abs"])


def _rounded(values: np.ndarray) -> list:
    return np.round(values.astype(np.float64), JSON_DECIMALS).tolist()


def attention_json(result: AttentionResult, layer: int = -1, head: int = -1, lang: str = "en") -> dict[str, Any]:
    """The API's answer: tokens, sizes, and the weights of one layer/head (-1 means all of them).

    ``weights`` is nested lists with the dimensions named in ``weights_shape``: ``[layers][heads][query][key]``
    with the selected ones dropped (e.g. layer 2, head 3 gives ``[query][key]``). ``notes`` are in ``lang``.
    """
    all_layers = layer is None or int(layer) < 0
    all_heads = head is None or int(head) < 0
    layer_i, head_i = analysis.check_layer_head(
        result, 0 if all_layers else int(layer), None if all_heads else int(head)
    )
    count = (result.num_layers if all_layers else 1) * (result.num_heads if all_heads else 1) * result.num_tokens**2
    if count > MAX_JSON_VALUES:
        raise InputError("attention.err.too_many_values", count=f"{count:,}", limit=f"{MAX_JSON_VALUES:,}")
    values = result.attentions if all_layers else result.attentions[layer_i]
    dims = (["layer"] if all_layers else []) + ["head", "query", "key"]
    if not all_heads:
        values = values[:, head_i] if all_layers else values[head_i]
        dims.remove("head")
    return {
        "model": result.model,
        "model_type": result.model_type,
        "part": str(result.part),
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
        "notes": [note.render(lang) for note in result.notes],
    }
