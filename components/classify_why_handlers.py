"""Handlers of the Classify tab's "Why this label?" (plain values in, plain values out, testable without a server):
per-token attributions toward the predicted label and toward another label, as shaded text, a bar chart, a
downloadable HTML page, the ``/explain_label`` JSON and the batch's "why" column."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.users import user_of
from pipelines.context import AppContext
from pipelines.engines.internals import refuse_remote
from pipelines.insight import figures
from pipelines.insight.attribution import DEFAULT_STEPS, Attribution, LabelExplainer, make_explainer
from pipelines.insight.export import file_stem, shaded_svg, write_downloads
from pipelines.messages import Msg, render
from pipelines.tasks.classify import DEFAULT_TEMPLATE, ClassifierSpec
from pipelines.user_files import keep_for

if TYPE_CHECKING:
    import plotly.graph_objects as go

WHY_SETTING = "classify.why_column"  # per-session value: add the "why" column to the batch CSV
WHY_COLUMN = "why"


@dataclass
class WhyView:
    """What "Why this label?" shows."""

    note: str
    predicted_html: str
    other_html: str
    chart: go.Figure
    download: str  # path of the standalone HTML page
    labels: list[str]
    predicted: Attribution
    other: Attribution | None
    images: list[str] = field(default_factory=list)  # the shaded views as SVG images


def caption(result: Attribution, lang: str = "en") -> str:
    """The heading of one shaded view: the label explained and its probability."""
    return render("insight.why.caption", lang, {"label": result.label, "probability": f"{result.probability:.1%}"})


def about(result: Attribution, lang: str = "en") -> str:
    """Model, adapter and method, the completeness check and the notes, as Markdown."""
    described = result.described
    lines = [Msg.of("insight.why.about", model=described.model,
                    adapter=described.adapter or Msg.of("insight.view.no_adapter"), method=described.method)]
    if result.baseline_output == result.baseline_output:  # not nan: integrated gradients
        lines.append(Msg.of("insight.why.complete", total=f"{sum(result.scores):+.4f}",
                            difference=f"{result.output - result.baseline_output:+.4f}"))
    lines += result.notes
    return "\n".join([lines[0].render(lang)] + [f"- {m.render(lang)}" for m in lines[1:]])


class WhyHandlers:
    """Explain a classification: attributions toward the predicted label and another one."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def explainer(self, method: str, model: str, labels: str, template: str, progress: Any = None) -> LabelExplainer:
        refuse_remote(self.ctx, model)  # gradients need the weights here
        spec = ClassifierSpec(method, model, labels, template or DEFAULT_TEMPLATE)
        return make_explainer(self.ctx.manager, spec, progress)

    def explain(self, text: str, method: str, model: str, labels: str, template: str, other: str = "",
                attribution: str = "", lang: str = "en", progress: Any = None) -> WhyView:
        """Attributions toward the predicted label and, when ``other`` names another label, toward it."""
        explainer = self.explainer(method, model, labels, template, progress)
        predicted = explainer.explain(text, None, attribution, DEFAULT_STEPS, self.ctx.limits)
        second = None
        if (other or "").strip() and other.strip().lower() != predicted.label.lower():
            second = explainer.explain(text, other, attribution, DEFAULT_STEPS, self.ctx.limits)
        first_html = figures.shaded_html(predicted.tokens, predicted.scores, caption(predicted, lang))
        second_html = figures.shaded_html(second.tokens, second.scores, caption(second, lang)) if second else ""
        chart = self.chart(predicted, second, lang)
        page = figures.download_page(render("insight.why.page_title", lang, {"label": predicted.label}),
                                     about(predicted, lang).replace("**", "") + first_html + second_html)
        images = {f"why-{i}-{file_stem(result.label)}.svg": shaded_svg(result.tokens, result.scores,
                                                                       caption(result, lang), figures.shade)
                  for i, result in enumerate((predicted, second), 1) if result is not None}
        path, svgs = write_downloads("lmw-why-", ("why-this-label.html", page), images)
        path, *svgs = keep_for(user_of(self.ctx), [path, *svgs], "lmw-why-", move=True)  # with login: the user's
        return WhyView(about(predicted, lang), first_html, second_html, chart, path, list(explainer.labels),
                       predicted, second, svgs)

    @staticmethod
    def chart(predicted: Attribution, other: Attribution | None, lang: str = "en") -> go.Figure:
        """Bars per token toward the predicted label, and toward the other label beside them."""
        title = render("insight.why.chart_title", lang, {"label": predicted.label})
        fig = figures.attribution_bars(predicted.tokens, predicted.scores, title, "why-this-label", lang)
        fig.data[0].name = predicted.label
        if other is not None:
            import plotly.graph_objects as go

            labels = [f"{i} {tok}" for i, tok in enumerate(other.tokens)]
            fig.add_trace(go.Bar(x=labels, y=other.scores, name=other.label, marker_color="#6366f1",
                                 hovertemplate="%{x}<br>%{y:.4f}<extra>" + other.label + "</extra>"))
            fig.update_layout(barmode="group", showlegend=True)
        return fig

    def api_json(self, text: str, model: str, label: str = "", method: str = "finetuned", labels: str = "",
                 template: str = DEFAULT_TEMPLATE, attribution: str = "", steps: Any = DEFAULT_STEPS,
                 lang: str = "en") -> dict:
        """The ``/explain_label`` endpoint's JSON."""
        explainer = self.explainer(method, model, labels, template)
        return explainer.explain(text, label or None, attribution, int(steps or DEFAULT_STEPS),
                                 self.ctx.limits).to_json(lang)

    # ---- the batch's "why" column ---------------------------------------------------------------------------
    def set_why_column(self, session: str, on: bool) -> None:
        """Remember whether this session's batch CSV gets the "why" column."""
        self.ctx.sessions.set_value(session, WHY_SETTING, bool(on))

    def why_column(self, session: str) -> bool:
        return bool(self.ctx.sessions.get_value(session, WHY_SETTING, False))

    def why_rows(self, method: str, model: str, labels: str, template: str) -> Callable[[list[str], list[str]],
                                                                                         list[str]]:
        """``(texts, predicted labels) -> why cells`` (the top-5 tokens toward each row's predicted label)."""
        explainer = self.explainer(method, model, labels, template)

        def why(texts: list[str], predicted: list[str]) -> list[str]:
            return [explainer.explain(text, label, "", DEFAULT_STEPS, self.ctx.limits).why()
                    if (text or "").strip() else "" for text, label in zip(texts, predicted, strict=True)]

        return why
