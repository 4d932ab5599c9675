"""Plotly figures of attention (numpy in, ``go.Figure`` out; shown by ``gr.Plot`` with Gradio's own plotly.js).

Every visible word (titles, axes, hover labels) comes from the locale files in the language asked for.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pipelines.attention.analysis import pool
from pipelines.attention.positions import PositionKind, PositionTable
from pipelines.messages import render

THUMB = 24  # cells per side of a thumbnail in the layers x heads grid
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"
FONT = MappingProxyType({"family": "system-ui, sans-serif", "size": 11})
CLIP_PERCENTILE = 99.0  # the position table's colours saturate at this percentile of |value|


def text(key: str, lang: str, **params: object) -> str:
    """The locale text of ``key`` in ``lang`` (named like the UI's helper so the house tests check the keys)."""
    return render(key, lang, params)


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 14}}, height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
        font=dict(FONT), plot_bgcolor="#f4f4f4",
    )
    return fig


def _masked(matrix: np.ndarray, causal: bool) -> np.ndarray:
    """Float32 copy; for decoders the cells above the diagonal (the causal mask) become gaps."""
    z = np.array(matrix, dtype=np.float32)
    if causal:
        z[np.triu_indices(z.shape[0], k=1)] = np.nan
    return z


def heatmap(
    matrix: np.ndarray, labels: list[str], title: str, *, causal: bool = False, diverging: bool = False,
    lang: str = "en",
) -> go.Figure:
    """One (query x key) matrix at full size with token labels and hover values."""
    z = _masked(matrix, causal)
    if diverging:
        bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.0
        scale = {"colorscale": DIVERGING, "zmid": 0.0, "zmin": -bound or -1e-9, "zmax": bound or 1e-9}
    else:
        scale = {"colorscale": SEQUENTIAL, "zmin": 0.0}
    query, key = text("attention.fig.query", lang), text("attention.fig.key", lang)
    value = text("attention.fig.value", lang)
    trace = go.Heatmap(
        z=z, x=labels, y=labels, hoverongaps=False, colorbar={"thickness": 12}, **scale,
        hovertemplate=f"{query} %{{y}}<br>{key} %{{x}}<br>{value} %{{z:.4f}}<extra></extra>",
    )
    fig = go.Figure(trace)
    fig.update_xaxes(title=text("attention.fig.key_axis", lang), tickangle=-60, type="category")
    fig.update_yaxes(title=text("attention.fig.query_axis", lang), autorange="reversed", type="category")
    if causal:
        title += text("attention.fig.causal_suffix", lang)
    return _layout(fig, title, height=min(900, max(420, 12 * len(labels) + 160)))


def grid(
    values: np.ndarray, title: str, *, normalise: bool = True, diverging: bool = False, thumb: int = THUMB,
    lang: str = "en",
) -> go.Figure:
    """A layers x heads grid of small heatmaps, tiled into one trace (fast, light) with gaps between tiles."""
    layers, heads, n, _ = values.shape
    size = min(n, thumb)
    step = size + 1
    tiled = np.full((layers * step - 1, heads * step - 1), np.nan, dtype=np.float32)
    for layer in range(layers):
        for head in range(heads):
            tile = pool(values[layer, head], size)
            if normalise:
                peak = float(np.abs(tile).max())
                tile = tile / peak if peak > 0 else tile
            tiled[layer * step:layer * step + size, head * step:head * step + size] = tile
    if diverging:
        bound = float(np.nanmax(np.abs(tiled))) or 1e-9
        scale = {"colorscale": DIVERGING, "zmid": 0.0, "zmin": -bound, "zmax": bound}
    else:
        scale = {"colorscale": SEQUENTIAL, "zmin": 0.0}
    fig = go.Figure(go.Heatmap(
        z=tiled, hoverongaps=False, colorbar={"thickness": 12}, **scale,
        hovertemplate=f"{text('attention.fig.value', lang)} %{{z:.4f}}<extra></extra>",
    ))
    centres = [i * step + (size - 1) / 2 for i in range(max(layers, heads))]
    fig.update_xaxes(tickvals=centres[:heads],
                     ticktext=[text("attention.fig.head_tick", lang, n=head) for head in range(heads)],
                     side="top", showgrid=False, zeroline=False)
    fig.update_yaxes(tickvals=centres[:layers],
                     ticktext=[text("attention.fig.layer_tick", lang, n=layer) for layer in range(layers)],
                     autorange="reversed", showgrid=False, zeroline=False, scaleanchor="x")
    height = min(2400, max(360, layers * (size + 1) * 900 // max(heads * (size + 1), 1) + 120))
    return _layout(fig, title, height=height)


def token_bars(profile: dict, labels: list[str], title: str, lang: str = "en") -> go.Figure:
    """For one token: bars of what it attends to (its row) and what attends to it (its column)."""
    token = labels[profile["token"]]
    to_name = text("attention.fig.attends_to", lang, token=token)
    by_name = text("attention.fig.attended_by", lang, token=token)
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.18, subplot_titles=(to_name, by_name))
    fig.add_trace(go.Bar(x=labels, y=profile["attends_to"], marker_color="#3b6fb6", name=to_name,
                         hovertemplate="%{x}: %{y:.4f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=profile["attended_by"], marker_color="#c4512b", name=by_name,
                         hovertemplate="%{x}: %{y:.4f}<extra></extra>"), row=2, col=1)
    fig.update_xaxes(type="category", tickangle=-60)
    fig.update_layout(showlegend=False)
    return _layout(fig, title, height=560)


def robust_bound(values: np.ndarray, percentile: float = CLIP_PERCENTILE) -> float:
    """A symmetric colour bound that a few outliers cannot dominate: the ``percentile`` of ``|values|``."""
    finite = np.abs(values[np.isfinite(values)])
    if finite.size == 0:
        return 1.0
    return float(np.percentile(finite, percentile)) or float(finite.max()) or 1.0


def cosine_similarity(table: np.ndarray) -> np.ndarray:
    """(positions, positions) cosine similarity between the rows of a position table."""
    rows = np.asarray(table, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = rows / np.where(norms > 0, norms, 1.0)
    return np.clip(unit @ unit.T, -1.0, 1.0).astype(np.float32)


def _no_table(table: PositionTable, lang: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=table.description.render(lang), showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, text("attention.fig.positions_empty", lang, kind=table.kind.msg), height=240)


def positions(table: PositionTable, max_dims: int = 1024, lang: str = "en") -> go.Figure:
    """A position table (positions x dimensions) beside the cosine similarity between its positions.

    Learned tables have a few huge values (BERT's reach ~30x the typical one), so the colours saturate at the
    99th percentile of |value| instead of the maximum; hovering still shows every exact value.
    """
    if table.table is None:
        return _no_table(table, lang)
    z = np.asarray(table.table[:, :max_dims], dtype=np.float32)
    bound = robust_bound(z)
    position = text("attention.fig.position", lang)
    value = text("attention.fig.value", lang)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.58, 0.42], horizontal_spacing=0.1, subplot_titles=(
        text("attention.fig.values_clipped", lang, bound=f"{bound:.3g}"), text("attention.fig.similarity", lang),
    ))
    fig.add_trace(go.Heatmap(
        z=z, colorscale=DIVERGING, zmid=0.0, zmin=-bound, zmax=bound, colorbar={"thickness": 12, "x": 0.5},
        hovertemplate=f"{position} %{{y}}<br>{text(table.x_title, lang)} %{{x}}<br>{value} %{{z:.4f}}<extra></extra>",
    ), row=1, col=1)
    fig.add_trace(go.Heatmap(
        z=cosine_similarity(z), colorscale=DIVERGING, zmid=0.0, zmin=-1.0, zmax=1.0, colorbar={"thickness": 12},
        hovertemplate=f"{position} %{{y}} / %{{x}}<br>{value} %{{z:.3f}}<extra></extra>",
    ), row=1, col=2)
    fig.update_xaxes(title=text(table.x_title, lang), row=1, col=1)
    fig.update_xaxes(title=position, row=1, col=2)
    fig.update_yaxes(title=position, autorange="reversed")
    if table.kind is PositionKind.ROTARY:
        columns = text("attention.fig.rotary_columns", lang, freqs=z.shape[1] // 2)
    else:
        columns = text("attention.fig.dims", lang, dims=z.shape[1])
    title = text("attention.fig.positions_title", lang, kind=table.kind.msg, positions=z.shape[0], columns=columns)
    fig = _layout(fig, title, 640)
    fig.update_layout(margin={"t": 90})  # room for the title above the two panel titles
    return fig
