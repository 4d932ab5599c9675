"""Plotly figures for the fine-tune view (plain plotly, no UI framework), labelled in a given language."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.messages import render

if TYPE_CHECKING:
    import plotly.graph_objects as go


def loss_figure(train: list[tuple[int, float]], val: list[tuple[int, float]], total_steps: int = 0,
                lang: str = "en", best_step: int | None = None) -> go.Figure:
    """Train loss per optimizer step, validation loss at each evaluation, and the best checkpoint's point."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if train:
        fig.add_trace(go.Scatter(x=[s for s, _ in train], y=[v for _, v in train],
                                 mode="lines" if len(train) > 30 else "lines+markers",
                                 name=render("training.chart.train_loss", lang)))
    if val:
        fig.add_trace(go.Scatter(x=[s for s, _ in val], y=[v for _, v in val], mode="lines+markers",
                                 name=render("training.chart.val_loss", lang)))
    best = [(s, v) for s, v in val if s == best_step]
    if best:
        fig.add_trace(go.Scatter(x=[best[-1][0]], y=[best[-1][1]], mode="markers",
                                 marker={"symbol": "star", "size": 14, "color": "#16a34a"},
                                 name=render("training.chart.best", lang, {"step": best[-1][0]})))
    fig.update_layout(
        xaxis_title=render("training.chart.step", lang), yaxis_title=render("training.chart.loss", lang),
        height=320, margin={"l": 50, "r": 20, "t": 30, "b": 40}, legend={"orientation": "h", "y": 1.12},
    )
    if total_steps:
        fig.update_xaxes(range=[0, total_steps])
    return fig
