"""Plotly figures of attention (numpy in, ``go.Figure`` out; shown by ``gr.Plot`` with Gradio's own plotly.js)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pipelines.attention.analysis import pool
from pipelines.attention.positions import PositionTable

THUMB = 24  # cells per side of a thumbnail in the layers x heads grid
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"
FONT = {"family": "system-ui, sans-serif", "size": 11}


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 14}}, height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
        font=FONT, plot_bgcolor="#f4f4f4",
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
) -> go.Figure:
    """One (query x key) matrix at full size with token labels and hover values."""
    z = _masked(matrix, causal)
    if diverging:
        bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.0
        scale = {"colorscale": DIVERGING, "zmid": 0.0, "zmin": -bound or -1e-9, "zmax": bound or 1e-9}
    else:
        scale = {"colorscale": SEQUENTIAL, "zmin": 0.0}
    trace = go.Heatmap(
        z=z, x=labels, y=labels, hoverongaps=False, colorbar={"thickness": 12}, **scale,
        hovertemplate="query %{y}<br>key %{x}<br>value %{z:.4f}<extra></extra>",
    )
    fig = go.Figure(trace)
    fig.update_xaxes(title="key (attended to)", tickangle=-60, type="category")
    fig.update_yaxes(title="query (attending)", autorange="reversed", type="category")
    if causal:
        title += " (causal: blank = masked future)"
    return _layout(fig, title, height=min(900, max(420, 12 * len(labels) + 160)))


def grid(
    values: np.ndarray, title: str, *, normalise: bool = True, diverging: bool = False, thumb: int = THUMB,
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
        hovertemplate="value %{z:.4f}<extra></extra>",
    ))
    centres = [i * step + (size - 1) / 2 for i in range(max(layers, heads))]
    fig.update_xaxes(tickvals=centres[:heads], ticktext=[f"H{h}" for h in range(heads)], side="top",
                     showgrid=False, zeroline=False)
    fig.update_yaxes(tickvals=centres[:layers], ticktext=[f"L{layer}" for layer in range(layers)],
                     autorange="reversed", showgrid=False, zeroline=False, scaleanchor="x")
    height = min(2400, max(360, layers * (size + 1) * 900 // max(heads * (size + 1), 1) + 120))
    return _layout(fig, title, height=height)


def token_bars(profile: dict, labels: list[str], title: str) -> go.Figure:
    """For one token: bars of what it attends to (its row) and what attends to it (its column)."""
    token = profile["token"]
    fig = make_subplots(
        rows=2, cols=1, vertical_spacing=0.18,
        subplot_titles=(f"'{labels[token]}' attends to", f"attends to '{labels[token]}'"),
    )
    fig.add_trace(go.Bar(x=labels, y=profile["attends_to"], marker_color="#3b6fb6", name="attends to",
                         hovertemplate="%{x}: %{y:.4f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=profile["attended_by"], marker_color="#c4512b", name="attended by",
                         hovertemplate="%{x}: %{y:.4f}<extra></extra>"), row=2, col=1)
    fig.update_xaxes(type="category", tickangle=-60)
    fig.update_layout(showlegend=False)
    return _layout(fig, title, height=560)


def positions(table: PositionTable, max_dims: int = 1024) -> go.Figure:
    """Heatmap of a position table (positions x dimensions), or an empty figure saying why there is none."""
    fig = go.Figure()
    if table.table is None:
        fig.add_annotation(text=table.description, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return _layout(fig, f"Position encoding: {table.kind}", height=240)
    z = np.asarray(table.table[:, :max_dims], dtype=np.float32)
    bound = float(np.abs(z).max()) or 1.0
    fig.add_trace(go.Heatmap(
        z=z, colorscale=DIVERGING, zmid=0.0, zmin=-bound, zmax=bound, colorbar={"thickness": 12},
        hovertemplate="position %{y}<br>dim %{x}<br>value %{z:.4f}<extra></extra>",
    ))
    fig.update_xaxes(title=table.x_title)
    fig.update_yaxes(title="position", autorange="reversed")
    columns = f"{z.shape[1] // 2} frequencies, cos | sin" if table.kind == "rotary" else f"{z.shape[1]} dims"
    return _layout(fig, f"Position encoding: {table.kind} ({z.shape[0]} positions x {columns})", 620)
