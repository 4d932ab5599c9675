"""Plotly figures of the pre-flight check and of compared runs (axis texts in the caller's language)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.messages import render

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from pipelines.training.preflight import PreflightReport

COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c")


def length_figure(report: PreflightReport, lang: str = "en") -> go.Figure:
    """Histogram of the rows' token lengths with the chosen max length (and the suggested one) as lines."""
    import plotly.graph_objects as go

    edges, counts = report.histogram.edges, report.histogram.counts
    centers = [(a + b) / 2 for a, b in zip(edges, edges[1:], strict=False)]
    widths = [b - a for a, b in zip(edges, edges[1:], strict=False)]
    fig = go.Figure(go.Bar(x=centers, y=counts, width=widths, marker_color="#60a5fa",
                           name=render("preflight.chart.rows", lang),
                           hovertemplate=render("preflight.chart.hover", lang)))
    top = max(counts or [1])
    for value, key, color, dash in ((report.max_length, "preflight.chart.max_length", "#dc2626", "solid"),
                                    (report.suggested_max_length, "preflight.chart.suggested", "#16a34a", "dot")):
        fig.add_trace(go.Scatter(x=[value, value], y=[0, top * 1.05], mode="lines",
                                 line={"color": color, "dash": dash, "width": 2},
                                 name=render(key, lang, {"value": value})))
    fig.update_layout(xaxis_title=render("preflight.chart.tokens", lang), yaxis_title=render("preflight.chart.rows",
                      lang), height=300, bargap=0.05, margin={"l": 50, "r": 20, "t": 40, "b": 45},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1})
    return fig


def loss_curves_figure(curves: list[dict[str, Any]], lang: str = "en") -> go.Figure:
    """Train (solid) and validation (dashed, markers) loss of several runs on one step axis."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, run in enumerate(curves):
        color = COLORS[i % len(COLORS)]
        train, val = run.get("train") or [], run.get("val") or []
        if train:
            fig.add_trace(go.Scatter(x=[p[0] for p in train], y=[p[1] for p in train], mode="lines",
                                     line={"color": color}, name=render("compare_runs.train", lang,
                                                                        {"run": run["label"]})))
        if val:
            fig.add_trace(go.Scatter(x=[p[0] for p in val], y=[p[1] for p in val], mode="lines+markers",
                                     line={"color": color, "dash": "dash"},
                                     name=render("compare_runs.val", lang, {"run": run["label"]})))
    fig.update_layout(xaxis_title=render("compare_runs.step", lang), yaxis_title=render("compare_runs.loss", lang),
                      height=360, margin={"l": 50, "r": 20, "t": 30, "b": 45})
    return fig
