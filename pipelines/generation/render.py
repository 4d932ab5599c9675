"""Views of generation results as plain HTML and plotly figures (no gradio; works offline)."""

from __future__ import annotations

import html
from typing import Any

from pipelines.generation.streaming import TokenInfo

TOKEN_CSS = """
.lmw-tokens{font-family:ui-monospace,SFMono-Regular,Consolas,monospace;font-size:14px;line-height:1.9;
white-space:pre-wrap;word-break:break-word}
.lmw-tok{border-radius:3px;padding:1px 0;cursor:help;color:#111}
.lmw-tok:focus{outline:2px solid #2563eb}
.lmw-tok.lmw-special{opacity:.6;font-style:italic}
.lmw-legend{font-size:12px;margin-top:6px;color:inherit}
.lmw-legend span{padding:0 6px;border-radius:3px;color:#111}
"""


def prob_colour(prob: float) -> str:
    """Red (unlikely) through yellow to green (likely)."""
    p = 0.0 if prob != prob else min(max(prob, 0.0), 1.0)  # NaN -> 0
    return f"hsl({round(120 * p)}, 85%, 78%)"


def visible(text: str) -> str:
    """Make whitespace-only or special pieces visible in labels."""
    return text.replace("\n", "\u21b5").replace("\t", "\u21e5") if text.strip() else repr(text)


def tooltip(token: TokenInfo) -> str:
    """Plain-text tooltip: the token, its probability and the model's top-5 alternatives."""
    name = token.label if token.special else visible(token.text) if token.text else "(part of a character)"
    lines = [f"{name}  p={token.prob:.3f}", "top-5:"]
    lines += [f"{i}. {visible(text)}  {prob:.3f}" for i, (text, prob) in enumerate(token.top, start=1)]
    return "\n".join(lines)


def token_html(tokens: list[TokenInfo], legend: str = "") -> str:
    """Every token as a coloured span; hovering (title) or focusing it shows its top-5 alternatives."""
    parts = [f"<style>{TOKEN_CSS}</style><div class='lmw-tokens'>"]
    for token in tokens:
        shown = token.text
        cls = "lmw-tok"
        if token.special:
            shown, cls = token.label or "\u2205", "lmw-tok lmw-special"
        elif not shown:
            shown = "\u00b7"  # a byte fragment of a multi-byte character
        parts.append(
            f"<span class='{cls}' tabindex='0' data-prob='{token.prob:.4f}' "
            f"style='background:{prob_colour(token.prob)}' title=\"{html.escape(tooltip(token))}\">"
            f"{html.escape(shown)}</span>"
        )
    parts.append("</div>")
    if tokens:
        steps = "".join(
            f"<span style='background:{prob_colour(p)}'>{p:.1f}</span>" for p in (0.0, 0.25, 0.5, 0.75, 1.0)
        )
        parts.append(f"<div class='lmw-legend'>{html.escape(legend)} {steps}</div>")
    return "".join(parts)


def next_token_figure(rows: list[dict[str, Any]], title: str = "") -> Any:
    """Horizontal bar chart of the most likely next tokens (most likely on top)."""
    import plotly.graph_objects as go

    labels = [f"{i}. {visible(r['token'])}" for i, r in enumerate(rows, start=1)]
    probs = [r["prob"] for r in rows]
    fig = go.Figure(
        go.Bar(
            x=probs[::-1], y=labels[::-1], orientation="h",
            marker_color=[prob_colour(p) for p in probs[::-1]], marker_line_color="#555", marker_line_width=0.5,
            text=[f"{p:.3f}" for p in probs[::-1]], textposition="outside",
        )
    )
    fig.update_layout(
        title=title, xaxis_title="probability", height=max(320, 24 * len(rows) + 90),
        margin={"l": 10, "r": 40, "t": 40 if title else 10, "b": 40},
        xaxis_range=[0, min(1.0, max(probs or [1]) * 1.2)],
    )
    return fig
