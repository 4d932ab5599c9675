"""Views of generation results as plain HTML and plotly figures (no gradio; works offline)."""

from __future__ import annotations

import html
from typing import Any

from pipelines.generation.results import TokenInfo
from pipelines.messages import render

TOKEN_CSS = """
.lmw-tokens{font-family:ui-monospace,SFMono-Regular,Consolas,monospace;font-size:14px;line-height:1.9;
white-space:pre-wrap;word-break:break-word}
.lmw-tok{border-radius:3px;padding:1px 0;cursor:help;color:#111;position:relative}
.lmw-tok:focus{outline:2px solid #2563eb}
.lmw-alt{display:none;position:absolute;left:0;top:1.7em;z-index:20;min-width:12em;padding:4px 8px;
white-space:pre;font-size:12px;line-height:1.4;background:#fff;color:#111;border:1px solid #888;border-radius:4px;
box-shadow:0 2px 6px rgba(0,0,0,.2);font-style:normal;pointer-events:none}
.lmw-tok:focus .lmw-alt,.lmw-tok:focus-within .lmw-alt,.lmw-tok:hover .lmw-alt{display:block}
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


def tooltip(token: TokenInfo, top_label: str = "top-5:", fragment: str = "(part of a character)") -> str:
    """Plain-text tooltip: the token, its probability and the model's top-5 alternatives."""
    name = token.label if token.special else visible(token.text) if token.text else fragment
    lines = [f"{name}  p={token.prob:.3f}", top_label]
    lines += [f"{i}. {visible(text)}  {prob:.3f}" for i, (text, prob) in enumerate(token.top, start=1)]
    return "\n".join(lines)


def token_html(tokens: list[TokenInfo], legend: str = "", top_label: str = "top-5:",
               fragment: str = "(part of a character)") -> str:
    """Every token as a coloured span; hovering or focusing it (keyboard: Tab) shows its top-5 alternatives in
    a small box (CSS ``:focus``/``:hover``; the ``title`` carries the same text for screen readers). Each span
    carries ``data-index`` (its step in the answer) and ``data-id`` (its token id) for the token inspector."""
    parts = [f"<style>{TOKEN_CSS}</style><div class='lmw-tokens'>"]
    for index, token in enumerate(tokens):
        shown = token.text
        cls = "lmw-tok"
        if token.special:
            shown, cls = token.label or "\u2205", "lmw-tok lmw-special"
        elif not shown:
            shown = "\u00b7"  # a byte fragment of a multi-byte character
        tip = html.escape(tooltip(token, top_label, fragment))
        parts.append(
            f"<span class='{cls}' tabindex='0' data-index='{index}' data-id='{token.id}' data-prob='{token.prob:.4f}' "
            f"style='background:{prob_colour(token.prob)}' title=\"{tip}\">"
            f"{html.escape(shown)}<span class='lmw-alt' role='tooltip'>{tip}</span></span>"
        )
    parts.append("</div>")
    if tokens:
        steps = "".join(
            f"<span style='background:{prob_colour(p)}'>{p:.1f}</span>" for p in (0.0, 0.25, 0.5, 0.75, 1.0)
        )
        parts.append(f"<div class='lmw-legend'>{html.escape(legend)} {steps}</div>")
    return "".join(parts)


def next_token_figure(rows: list[dict[str, Any]], title: str = "", axis: str = "probability") -> Any:
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
        title=title, xaxis_title=axis, height=max(320, 24 * len(rows) + 90),
        margin={"l": 10, "r": 40, "t": 40 if title else 10, "b": 40},
        xaxis_range=[0, min(1.0, max(probs or [1]) * 1.2)],
    )
    return fig


STAT_KEYS = ("prompt_tokens", "new_tokens", "max_new_tokens", "time_to_first_token_s", "tokens_per_s", "total_s",
             "device", "precision", "seed", "stop_reason", "mode", "dropped_turns", "sampling", "notes")


def sampling_text(sampling: dict[str, Any], lang: str = "en") -> str:
    """The sampling knobs used, as one short phrase."""
    if not sampling:
        return ""
    if not sampling.get("do_sample"):
        return render("generate.sampling.greedy", lang, {"penalty": sampling.get("repetition_penalty", 1.0)})
    return render("generate.sampling.sample", lang, {k: sampling.get(k) for k in
                                                     ("temperature", "top_p", "top_k", "repetition_penalty")})


def stats_view(stats: dict[str, Any] | None, lang: str = "en") -> dict[str, Any] | None:
    """The stats of :meth:`GenerationResult.stats` for the panel: labels and word values in ``lang``."""
    if not stats:
        return None
    shown: dict[str, Any] = {}
    for key in STAT_KEYS:
        value = stats.get(key)
        if key in ("stop_reason", "mode") and value:
            value = render(f"generate.{key}.{value}", lang)
        elif key == "sampling":
            value = sampling_text(value or {}, lang)
        elif key == "device" and isinstance(value, str):
            value = value.upper()
        elif key == "precision" and isinstance(value, str) and value.startswith("auto"):
            value = render("generate.precision.auto_short", lang) + value[len("auto"):]
        elif key in ("notes", "dropped_turns") and not value:
            continue
        elif key == "stop_reason" and not value:
            value = render("generate.stop_reason.running", lang)
        shown[render(f"generate.stat.{key}", lang)] = value
    return shown
