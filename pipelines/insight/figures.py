"""Plotly figures and shaded-text HTML of the insight views (plain data in, ``go.Figure`` / HTML out).

Every visible word comes from the locale files in the language asked for; every figure keeps plotly's
"download plot as PNG" button with a file name naming the view (:mod:`pipelines.insight.export`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from pipelines.insight.export import exportable
from pipelines.messages import render

if TYPE_CHECKING:
    from pipelines.insight.logit_lens import LensComparison, LensResult

FONT = MappingProxyType({"family": "system-ui, sans-serif", "size": 11})
CELL_CHARS = 6  # characters of a token shown inside a heatmap cell


def text(key: str, lang: str, **params: object) -> str:
    """The locale text of ``key`` in ``lang`` (named like the UI's helper so the house tests check the keys)."""
    return render(key, lang, params)


def _short(token: str) -> str:
    return token if len(token) <= CELL_CHARS else token[: CELL_CHARS - 1] + "\u2026"


def _layout(fig: go.Figure, title: str, height: int, name: str) -> go.Figure:
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=height, font=dict(FONT),
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, plot_bgcolor="#f4f4f4")
    return exportable(fig, name)


def layer_names(count: int, lang: str) -> list[str]:
    """Row labels of the lens: the embeddings, then layer 1..n."""
    return [text("insight.fig.embeddings", lang)] + [text("insight.fig.layer_n", lang, layer=i)
                                                     for i in range(1, count)]


def lens_heatmap(result: LensResult, lang: str = "en", title: str = "") -> go.Figure:
    """Layers x positions: each cell shows the layer's top next token, coloured by its probability."""
    layers = layer_names(result.num_layers, lang)
    cells = [[_short(tok) for tok in row] for row in result.top_tokens]
    hover = text("insight.fig.lens_hover", lang)
    custom = np.dstack([np.array(result.top_tokens, dtype=object),
                        result.final_ranks.astype(object),
                        np.array([result.final_tokens] * result.num_layers, dtype=object)])
    trace = go.Heatmap(
        z=result.top_probs, x=result.labels, y=layers, text=cells, texttemplate="%{text}",
        textfont={"size": 9}, customdata=custom, colorscale="Viridis", zmin=0.0, zmax=1.0,
        colorbar={"thickness": 12, "title": {"text": text("insight.fig.probability", lang)}},
        hovertemplate=hover + "<extra></extra>",
    )
    fig = go.Figure(trace)
    fig.update_xaxes(title=text("insight.fig.position_axis", lang), tickangle=-60, type="category")
    fig.update_yaxes(title=text("insight.fig.layer_axis", lang), type="category")
    height = min(1400, max(360, 22 * result.num_layers + 200))
    return _layout(fig, title or text("insight.fig.lens_title", lang), height, "logit-lens")


def rank_heatmap(result: LensResult, lang: str = "en") -> go.Figure:
    """Layers x positions: the rank of the model's final answer at each layer (log colour; 1 = already top)."""
    ranks = result.final_ranks
    trace = go.Heatmap(
        z=np.log10(ranks), x=result.labels, y=layer_names(result.num_layers, lang), text=ranks,
        texttemplate="%{text}" if result.num_positions <= 48 else None, textfont={"size": 9},
        customdata=np.array([result.final_tokens] * result.num_layers, dtype=object),
        colorscale="Viridis_r", zmin=0.0,
        colorbar={"thickness": 12, "title": {"text": text("insight.fig.log_rank", lang)}},
        hovertemplate=text("insight.fig.rank_hover", lang) + "<extra></extra>",
    )
    fig = go.Figure(trace)
    fig.update_xaxes(title=text("insight.fig.position_axis", lang), tickangle=-60, type="category")
    fig.update_yaxes(title=text("insight.fig.layer_axis", lang), type="category")
    height = min(1400, max(360, 22 * result.num_layers + 200))
    return _layout(fig, text("insight.fig.rank_title", lang), height, "logit-lens-rank")


def compare_figure(comparison: LensComparison, lang: str = "en") -> go.Figure:
    """Per position, the first layer at which the base model's and the adapter's answers become top-1."""
    rows = comparison.rows()
    labels = [f"{r['position']} {r['token']}" for r in rows]
    fig = go.Figure()
    for key, answer, name in (("base_layer", "base_answer", text("insight.fig.base", lang)),
                              ("adapter_layer", "adapter_answer", text("insight.fig.adapter", lang))):
        fig.add_trace(go.Scatter(
            x=labels, y=[r[key] for r in rows], mode="lines+markers", name=name,
            customdata=[r[answer] for r in rows],
            hovertemplate=text("insight.fig.compare_hover", lang) + "<extra>" + name + "</extra>",
        ))
    fig.update_xaxes(title=text("insight.fig.position_axis", lang), tickangle=-60, type="category")
    fig.update_yaxes(title=text("insight.fig.first_layer_axis", lang), rangemode="tozero")
    return _layout(fig, text("insight.fig.compare_title", lang), 420, "logit-lens-compare")


# ---- attributions -------------------------------------------------------------------------------------------
def shade(value: float, bound: float) -> str:
    """Green for a positive attribution, red for a negative one, white at zero (alpha by |value| / bound)."""
    alpha = 0.0 if bound <= 0 else min(1.0, abs(value) / bound)
    rgb = "22,163,74" if value >= 0 else "220,38,38"
    return f"rgba({rgb},{alpha * 0.85:.3f})"


def shaded_html(tokens: Sequence[str], scores: Sequence[float], caption: str = "", elem_class: str = "") -> str:
    """The tokens as inline spans shaded by their scores (self-contained HTML; hover shows the value)."""
    bound = max((abs(float(s)) for s in scores), default=0.0)
    spans = []
    for i, (tok, score) in enumerate(zip(tokens, scores, strict=True)):
        spans.append(f"<span class='lmw-attr' data-index='{i}' data-score='{float(score):.5f}' "
                     f"title='{float(score):+.4f}' style='background:{shade(float(score), bound)};"
                     f"border-radius:3px;padding:1px 2px;margin:0 1px;color:#111'>{html.escape(tok)}</span>")
    head = f"<div class='lmw-attr-caption' style='font-size:12px;margin-bottom:4px'>{html.escape(caption)}</div>"
    return (f"<div class='lmw-shaded {html.escape(elem_class)}' style='line-height:2;font-family:ui-monospace,"
            f"monospace;white-space:pre-wrap'>{head if caption else ''}{''.join(spans)}</div>")


def attribution_bars(tokens: Sequence[str], scores: Sequence[float], title: str, name: str,
                     lang: str = "en") -> go.Figure:
    """A bar per token (in text order), green for towards the label, red for against it."""
    labels = [f"{i} {tok}" for i, tok in enumerate(tokens)]
    values = [float(s) for s in scores]
    fig = go.Figure(go.Bar(x=labels, y=values, marker_color=["#16a34a" if v >= 0 else "#dc2626" for v in values],
                           hovertemplate="%{x}<br>%{y:.4f}<extra></extra>"))
    fig.update_xaxes(title=text("insight.fig.token_axis", lang), tickangle=-60, type="category")
    fig.update_yaxes(title=text("insight.fig.attribution_axis", lang), zeroline=True)
    return _layout(fig, title, 380, name)


def download_page(title: str, body: str) -> str:
    """A standalone HTML page around a shaded-text view (the "download HTML" fallback)."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:system-ui,sans-serif;max-width:60em;margin:2em auto'>"
            f"<h3>{html.escape(title)}</h3>{body}</body></html>")
