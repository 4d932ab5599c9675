"""Plotly figures for the fine-tune view (plain plotly, no UI framework)."""

from __future__ import annotations

import plotly.graph_objects as go


def loss_figure(train: list[tuple[int, float]], val: list[tuple[int, float]], total_steps: int = 0) -> go.Figure:
    """Train loss per optimizer step and validation loss at each evaluation."""
    fig = go.Figure()
    if train:
        fig.add_trace(go.Scatter(x=[s for s, _ in train], y=[v for _, v in train],
                                 mode="lines" if len(train) > 30 else "lines+markers", name="train loss"))
    if val:
        fig.add_trace(go.Scatter(
            x=[s for s, _ in val], y=[v for _, v in val], mode="lines+markers", name="validation loss"
        ))
    fig.update_layout(
        xaxis_title="optimizer step", yaxis_title="loss", height=320, margin={"l": 50, "r": 20, "t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.12},
    )
    if total_steps:
        fig.update_xaxes(range=[0, total_steps])
    return fig
