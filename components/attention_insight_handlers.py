"""Handlers of the Attention tab's insight views (logit lens, attention over a generated answer): plain values in,
plain values out, testable without a server. The task logic is in :mod:`pipelines.insight`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.context import AppContext
from pipelines.engines.internals import refuse_remote
from pipelines.errors import InputError
from pipelines.insight import figures
from pipelines.insight.common import DEFAULT_LENS_TOKENS, base_reference
from pipelines.insight.export import exportable
from pipelines.insight.generated import Exchange, generated_attention, last_exchange, mark_boundary
from pipelines.insight.logit_lens import LensComparison, LensInput, LensResult, logit_lens
from pipelines.messages import Msg

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from pipelines.attention import AttentionResult
    from pipelines.attention.views import PlotViews

Progress = Callable[[float, str], None] | None
PLOT_NAMES = ("attention-head", "attention-mean", "attention-grid", "attention-rollout", "attention-token")


@dataclass
class LensView:
    """What the logit-lens section shows."""

    note: str
    heatmap: go.Figure
    ranks: go.Figure
    compare: go.Figure | None
    result: LensResult


def about(result: LensResult, lang: str = "en") -> str:
    """One line naming the model, the adapter, the layer range and the method, then the notes, as Markdown."""
    described = result.described
    line = Msg.of("insight.view.about", model=described.model,
                  adapter=described.adapter or Msg.of("insight.view.no_adapter"),
                  layers=Msg.of("insight.view.layers", last=result.num_layers - 1), method=described.method)
    norm = Msg.of("insight.view.norm", norm=result.norm) if result.norm else Msg.of("insight.view.no_norm")
    extra = [Msg.of("insight.view.positions", count=result.num_positions), norm, *result.notes]
    return "\n".join([line.render(lang)] + [f"- {note.render(lang)}" for note in extra])


def exportable_plots(plots: PlotViews, result: AttentionResult | None) -> tuple:
    """The attention plots in the tab's order, each with the prompt/answer boundary and a named PNG download."""
    return tuple(exportable(mark_boundary(fig, result), name) for fig, name in zip(plots.as_tuple(), PLOT_NAMES,
                                                                                    strict=True))


class AttentionInsightHandlers:
    """The logit lens (with the base-vs-adapter comparison) and attention over a prompt and its answer."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def lens_result(self, ref: str, text: str, cap: Any = DEFAULT_LENS_TOKENS, progress: Progress = None) -> LensResult:
        refuse_remote(self.ctx, ref)  # a remote server returns no hidden states
        return logit_lens(self.ctx.manager, ref, LensInput(text or "", cap), progress, self.ctx.limits)

    def lens(self, ref: str, text: str, cap: Any = DEFAULT_LENS_TOKENS, compare: bool = False, lang: str = "en",
             progress: Progress = None) -> LensView:
        """The lens heatmap, the rank heatmap and, with ``compare``, the base model against the adapter."""
        result = self.lens_result(ref, text, cap, progress)
        comparison = None
        if compare:
            base = base_reference(self.ctx.manager, ref)
            if base is None:
                raise InputError("insight.err.compare_needs_adapter", model=ref)
            comparison = figures.compare_figure(LensComparison(self.lens_result(base, text, cap, progress), result),
                                                lang)
        return LensView(about(result, lang), figures.lens_heatmap(result, lang), figures.rank_heatmap(result, lang),
                        comparison, result)

    def lens_json(self, text: str, model: str, max_tokens: Any = DEFAULT_LENS_TOKENS, lang: str = "en") -> dict:
        """The ``/logit_lens`` endpoint's JSON."""
        return self.lens_result(model, text, max_tokens).to_json(lang)

    # ---- attention over a generated answer ----------------------------------------------------------------
    def last_exchange(self, session: str) -> Exchange:
        """The session's last prompt and answer from the Generate tab, or a clear error when there is none."""
        exchange = last_exchange(self.ctx.sessions, session)
        if exchange is None or not exchange.answer:
            raise InputError("insight.err.no_exchange")
        return exchange

    def generated(self, ref: str, prompt: str, answer: str, cap: Any, progress: Progress = None) -> AttentionResult:
        """Attention over ``prompt`` followed by ``answer``; ``sentence_b_start`` is the first answer token."""
        refuse_remote(self.ctx, ref)
        result = generated_attention(self.ctx.manager, ref, prompt, answer, cap, progress, self.ctx.limits)
        result.notes.append(Msg.of("insight.note.boundary", start=result.sentence_b_start))
        return result
