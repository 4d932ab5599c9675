"""Handlers of the Generate tab's "Why this token?" panel (plain values in, plain values out): inspect one token of
the session's last answer, re-select a layer or head without recomputing, and the ``/inspect_token`` JSON."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.users import user_of
from pipelines.context import AppContext
from pipelines.errors import InputError
from pipelines.generation.render import next_token_figure
from pipelines.insight import figures
from pipelines.insight.attribution import DEFAULT_STEPS
from pipelines.insight.export import shaded_svg, write_downloads
from pipelines.insight.generated import last_exchange
from pipelines.insight.token_inspect import InspectResult, TokenInspector
from pipelines.messages import Msg, render
from pipelines.user_files import keep_for

if TYPE_CHECKING:
    import plotly.graph_objects as go


@dataclass
class InspectView:
    """What the panel shows for one token."""

    note: str
    alternatives: go.Figure
    attention_html: str
    attribution_html: str
    download: str  # the standalone HTML page ("" until the attributions are in)
    layers: int
    heads: int
    result: InspectResult
    images: list[str] = field(default_factory=list)  # the shaded views as SVG images

    @property
    def files(self) -> list[str]:
        """Everything to download: the HTML page and the SVG images."""
        return [self.download, *self.images] if self.download else []


def _int(value: Any, default: int = -1) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def attention_scores(result: InspectResult, layer: Any = -1, head: Any = -1) -> list[float]:
    """The step's attention over the tokens before it: one layer (-1: mean over layers), one head (-1: mean)."""
    layers = result.attention_heads.shape[0]
    layer_i, head_i = _int(layer), _int(head)
    rows = result.attention_heads if head_i < 0 else result.attention_heads[:, [min(head_i, result.attention_heads
                                                                                      .shape[1] - 1)]]
    matrix = rows.mean(axis=1)  # (layers, keys)
    row = matrix.mean(axis=0) if layer_i < 0 else matrix[min(layer_i, layers - 1)]
    return [float(v) for v in row[: result.position]]


class InspectHandlers:
    """Why this token? Alternatives, attention of the step and attributions, for the session's last answer."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.inspector = TokenInspector(ctx)

    def inspect_last(self, session: str, index: Any, layer: Any = -1, head: Any = -1, attribution: str = "",
                     lang: str = "en", progress: Any = None) -> InspectView:
        """Inspect token ``index`` of the session's last generated answer."""
        *_, last = self.inspect_steps(session, index, layer, head, attribution, lang, progress)
        return last

    def inspect_steps(self, session: str, index: Any, layer: Any = -1, head: Any = -1, attribution: str = "",
                      lang: str = "en", progress: Any = None) -> Iterator[InspectView]:
        """The panel in two looks: the alternatives and the attention at once (one forward pass), then with the
        attributions (integrated gradients take many passes)."""
        exchange = last_exchange(self.ctx.sessions, session)
        if exchange is None or not (exchange.answer or exchange.answer_ids):
            raise InputError("insight.err.no_exchange")
        settings = {"mode": exchange.mode or "auto", "precision": exchange.precision or "auto"}
        first = self.inspector.first_look(exchange.model, exchange.prompt, exchange.answer, index, settings,
                                          exchange.system, attribution, DEFAULT_STEPS, progress, exchange.answer_ids,
                                          exchange.prompt_ids)
        yield self.view(first, layer, head, lang)
        yield self.view(self.inspector.attribute(first, progress), layer, head, lang)

    def view(self, result: InspectResult, layer: Any = -1, head: Any = -1, lang: str = "en") -> InspectView:
        """Every part of the panel for ``result`` at ``layer``/``head`` (-1: mean); the downloads once the
        attributions are in."""
        described = result.described
        note = Msg.of("insight.token.about", token=result.token, index=result.index, model=described.model,
                      adapter=described.adapter or Msg.of("insight.view.no_adapter"), method=described.method)
        lines = [note.render(lang)] + [f"- {n.render(lang)}" for n in result.notes]
        title = render("insight.token.alternatives", lang, {"token": result.token})
        chart = figures.exportable(next_token_figure(result.alternatives, title, render("insight.fig.probability",
                                                                                        lang)), "why-this-token")
        attention_html, attribution_html = self.shaded(result, layer, head, lang)
        layers, heads = result.attention_heads.shape[:2]
        view = InspectView("\n".join(lines), chart, attention_html, attribution_html, "", layers, heads, result)
        if result.attributions:
            view.download, view.images = self.downloads(result, layer, head, lang, "\n".join(lines))
        return view

    def downloads(self, result: InspectResult, layer: Any, head: Any, lang: str, about: str) -> tuple[str, list[str]]:
        """The HTML page of the panel and its two shaded views as SVG images."""
        attention_html, attribution_html = self.shaded(result, layer, head, lang)
        tokens = result.tokens[: result.position]
        page = figures.download_page(render("insight.token.page_title", lang, {"token": result.token}),
                                     about + attention_html + attribution_html)
        images = {"why-this-token-attention.svg": shaded_svg(tokens, attention_scores(result, layer, head),
                                                             self.captions(result, layer, head, lang)[0],
                                                             figures.shade),
                  "why-this-token-attributions.svg": shaded_svg(tokens, result.attributions,
                                                                self.captions(result, layer, head, lang)[1],
                                                                figures.shade)}
        path, svgs = write_downloads("lmw-token-", ("why-this-token.html", page), images)
        path, *svgs = keep_for(user_of(self.ctx), [path, *svgs], "lmw-token-", move=True)  # with login: the user's
        return path, svgs

    @staticmethod
    def captions(result: InspectResult, layer: Any = -1, head: Any = -1, lang: str = "en") -> tuple[str, str]:
        """The headings of the attention view and the attribution view."""
        layer_i, head_i = _int(layer), _int(head)
        where = render("insight.token.all_layers", lang) if layer_i < 0 else render(
            "insight.fig.layer_n", lang, {"layer": layer_i})
        who = render("insight.token.mean_heads", lang) if head_i < 0 else render(
            "insight.token.head_n", lang, {"head": head_i})
        return (render("insight.token.attention", lang, {"layer": where, "head": who}),
                render("insight.token.attribution", lang, {"token": result.token}))

    @classmethod
    def shaded(cls, result: InspectResult, layer: Any = -1, head: Any = -1, lang: str = "en") -> tuple[str, str]:
        """The context before the token shaded by the step's attention, and by the attributions (a line saying
        they are being computed while they are not in yet)."""
        tokens = result.tokens[: result.position]
        attention_caption, attribution_caption = cls.captions(result, layer, head, lang)
        attention = figures.shaded_html(tokens, attention_scores(result, layer, head), attention_caption)
        if not result.attributions:
            waiting = render("insight.token.attributing", lang, {"method": result.method.msg(result.steps)})
            return attention, f"<div class='lmw-attributing'>{html.escape(waiting)}</div>"
        return attention, figures.shaded_html(tokens, result.attributions, attribution_caption)

    def api_json(self, prompt: str, answer: str, index: Any, model: str, settings: dict | None = None,
                 attribution: str = "", steps: Any = DEFAULT_STEPS, lang: str = "en") -> dict:
        """The ``/inspect_token`` endpoint's JSON."""
        settings = dict(settings or {})
        system = str(settings.pop("system", "") or "")
        result = self.inspector.inspect(model, prompt, answer, index, settings, system, attribution,
                                        int(steps or DEFAULT_STEPS))
        return result.to_json(lang)
