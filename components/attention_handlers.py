"""The Attention tab's handlers: plain values in, plain values out (strings, numbers, figures, dataclasses).

The layout (:mod:`components.attention`) turns these into Gradio updates; the task logic is in
:mod:`pipelines.attention`. Each method takes the language its texts are rendered in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from pipelines.attention import (
    DEFAULT_MAX_TOKENS,
    AttentionInput,
    AttentionResult,
    BertvizOptions,
    Selection,
    attention_json,
    build_views,
    extract,
    figures,
    head_view_html,
    iframe,
    load_for_attention,
    plot_views,
    position_table,
)
from pipelines.attention.shape import ModelShape, model_shape
from pipelines.attention.views import TOP_HEADER_KEYS, CompareView, PlotViews, compare_view, notes_markdown
from pipelines.context import AppContext
from pipelines.engines.internals import refuse_remote
from pipelines.errors import InputError
from pipelines.messages import render
from pipelines.result_cache import Ticket
from pipelines.sessions import session_key

Progress = Callable[[float, str], None] | None
KIND = "attention"  # the result cache's kind for the tab's last run
TEXT, GENERATED = "text", "generated"  # recipes: what a result is recomputed from when the cache dropped it


def current_session() -> str:
    """The browser session of the request Gradio is handling now (``"api"`` outside one)."""
    from components.common import current_request

    return session_key(current_request())


@dataclass
class RunView:
    """Everything one "Show attention" run shows."""

    result: AttentionResult
    note: str
    head_html: str
    model_html: str
    plots: PlotViews
    selection: Selection
    token_choices: list[tuple[str, int]]
    ticket: Ticket | None = None  # what the page's gr.State keeps instead of the weights (ctx.results)

    @property
    def shape(self) -> ModelShape:
        return ModelShape(self.result.num_layers, self.result.num_heads)


def _int(value: Any, default: int = 0) -> int:
    """A slider or dropdown value as an int (None and blanks give ``default``)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class AttentionHandlers:
    """Show attention, re-select a layer/head/token, compare two models, show position embeddings."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.bertviz = BertvizOptions.for_mode(ctx.config.bertviz_js)

    def extract(self, ref: str, words: str, pair: str = "", cap: Any = DEFAULT_MAX_TOKENS,
                progress: Progress = None) -> AttentionResult:
        """Attention of every layer and head of ``ref`` on the text (cut to the app's character cap with a note).

        A remote model is refused (its server returns no attention), naming the same local model when there is one.
        """
        refuse_remote(self.ctx, ref)
        request = AttentionInput(words or "", pair or "", cap if cap not in (None, "") else DEFAULT_MAX_TOKENS)
        return extract(self.ctx.manager, ref, request, progress, self.ctx.limits, self.ctx.batcher,
                       self.ctx.config.microbatch_max_mb * 2**20)

    def run(self, ref: str, words: str, pair: str, cap: Any, layer: Any, head: Any, lang: str = "en",
            progress: Progress = None, session: str | None = None) -> RunView:
        """Run the model and build every view at the selected (clamped) layer and head."""
        result = self.extract(ref, words, pair, cap, progress)
        return self.view(result, layer, head, lang, (TEXT, ref, words or "", pair or "", cap), session)

    def run_generated(self, ref: str, prompt: str, answer: str, cap: Any, layer: Any, head: Any, lang: str = "en",
                      progress: Progress = None, session: str | None = None) -> RunView:
        """Attention over a prompt and its generated answer, with every view (recomputable from its inputs)."""
        result = self._generated(ref, prompt, answer, cap, progress)
        return self.view(result, layer, head, lang, (GENERATED, ref, prompt or "", answer or "", cap), session)

    def _generated(self, ref: str, prompt: str, answer: str, cap: Any, progress: Progress = None) -> AttentionResult:
        from components.attention_insight_handlers import AttentionInsightHandlers

        return AttentionInsightHandlers(self.ctx).generated(ref, prompt, answer, cap, progress)

    def view(self, result: AttentionResult, layer: Any, head: Any, lang: str = "en", recipe: tuple = (),
             session: str | None = None) -> RunView:
        """Every view of ``result`` at the selected (clamped) layer and head; the weights stay on the server
        (``ctx.results``, under the session) and the view's ``ticket`` finds them again (or ``recipe`` remakes
        them when the cache had to drop them)."""
        sel = Selection(_int(layer), _int(head), 0).clamp(result)
        views = build_views(result, sel, self.bertviz, lang)
        ticket = self.ctx.results.put(session or current_session(), KIND, result, recipe)
        self.ctx.results.trim_soon()  # the run's freed tensors (and the response's) go back to the system
        return RunView(
            result, notes_markdown(result, views.notes, lang), iframe(views.head_view), iframe(views.model_view),
            views.plots, sel, [(label, i) for i, label in enumerate(result.labels)], ticket,
        )

    def resolve(self, kept: Ticket | AttentionResult | None) -> AttentionResult:
        """The result a page's state stands for: from the cache, or recomputed from the ticket's recipe on a miss
        (the same inputs give the same weights); a clear error when there was no run yet."""
        if isinstance(kept, AttentionResult):
            return kept
        if not isinstance(kept, Ticket):
            raise InputError("attention.err.run_first")
        result = self.ctx.results.get(kept)
        if result is not None:
            return result
        if len(kept.recipe) != 5 or kept.recipe[0] not in (TEXT, GENERATED):
            raise InputError("attention.err.run_first")
        source, ref, first, second, cap = kept.recipe
        extract = self.extract if source == TEXT else self._generated
        result = extract(ref, first, second, cap)
        self.ctx.results.restore(kept, result)
        return result

    def _require(self, result: Ticket | AttentionResult | None) -> AttentionResult:
        return self.resolve(result)

    def reselect(self, result: Ticket | AttentionResult | None, layer: Any, head: Any, token: Any,
                 lang: str = "en") -> PlotViews:
        """The plotly views for another layer, head or token of the last run (no model call unless the server
        had dropped the weights: then they are recomputed)."""
        return plot_views(self._require(result), Selection(_int(layer), _int(head), _int(token)), lang)

    def relayer(self, result: Ticket | AttentionResult | None, layer: Any, head: Any, token: Any,
                lang: str = "en") -> tuple[str, PlotViews]:
        """The bertviz head view and the plotly views for another layer of the last run."""
        result = self._require(result)
        layer_i = Selection(_int(layer), 0, 0).clamp(result).layer
        html = iframe(head_view_html(result, layer_i, self.bertviz, lang))
        return html, self.reselect(result, layer, head, token, lang)

    def compare(self, ref_a: str, ref_b: str, words: str, pair: str, cap: Any, layer: Any, head: Any,
                lang: str = "en", progress: Progress = None) -> CompareView:
        """Model B minus model A on the same text."""
        first = self.extract(ref_a, words, pair, cap, progress)
        second = self.extract(ref_b, words, pair, cap, progress)
        return compare_view(first, second, _int(layer), max(_int(head), 0), lang)

    def positions(self, ref: str, lang: str = "en", progress: Progress = None) -> tuple[str, go.Figure]:
        """The description and the figure of the model's position encoding."""
        refuse_remote(self.ctx, ref)
        loaded = load_for_attention(self.ctx.manager, ref, progress)
        if loaded.tokenizer is None:
            raise InputError("attention.err.positions_spacy")
        table = position_table(loaded.model)
        return table.description.render(lang), figures.positions(table, lang=lang)

    @staticmethod
    def top_headers(lang: str = "en") -> list[str]:
        """The most-changed-heads table's column names in ``lang`` (English: the API's machine names)."""
        return [render(key, lang) for key in TOP_HEADER_KEYS]

    def shape(self, ref: str) -> ModelShape | None:
        """Layers and heads of ``ref`` from its config.json (no weights loaded); None when unknown."""
        return model_shape(ref, self.ctx.config)

    def api_json(self, model: str, text: str, text_pair: str = "", layer: Any = -1, head: Any = -1,
                 max_tokens: Any = DEFAULT_MAX_TOKENS, lang: str = "en") -> dict:
        """The ``/attention`` endpoint's JSON (notes in ``lang``)."""
        result = self.extract(model, text, text_pair, max_tokens)
        return attention_json(result, layer, head, lang)
