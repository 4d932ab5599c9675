"""Plotly figures shared by several tabs (plain plotly, no UI framework); axis texts in the caller's language."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.messages import render

if TYPE_CHECKING:
    import plotly.graph_objects as go


def confusion_figure(labels: list[str], matrix: list[list[int]], lang: str = "en") -> go.Figure:
    """Confusion-matrix heat map: rows are true labels, columns predicted labels."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(
        z=matrix, x=labels, y=labels, colorscale="Blues", text=matrix, texttemplate="%{text}",
        hovertemplate=render("charts.confusion_hover", lang),
    ))
    fig.update_layout(xaxis_title=render("charts.predicted", lang), yaxis_title=render("charts.true", lang),
                      yaxis_autorange="reversed", height=320 + 20 * len(labels),
                      margin={"l": 60, "r": 20, "t": 30, "b": 50})
    return fig
