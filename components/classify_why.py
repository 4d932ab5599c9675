"""The Classify tab's "Why this label?" section and the batch's "why" column switch: layout and event wiring only
(the work is :class:`~components.classify_why_handlers.WhyHandlers`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from components.classify_why_handlers import WhyHandlers
from components.common import ErrorLine, progress_reporter, ui_errors
from components.i18n import request_lang, t
from components.insight_export import svg_export_script
from pipelines.context import HEAVY, AppContext
from pipelines.insight.attribution import DEFAULT_STEPS, AttributionMethod
from pipelines.sessions import session_key
from pipelines.tasks.classify import DEFAULT_TEMPLATE


@dataclass
class WhyWidgets:
    other: gr.Dropdown
    attribution: gr.Radio
    run: gr.Button
    errors: ErrorLine
    note: gr.Markdown
    predicted: gr.HTML
    other_html: gr.HTML
    chart: gr.Plot
    download: gr.File

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.note, self.predicted, self.other_html, self.chart, self.download, self.other]


def why_section(ctx: AppContext) -> WhyWidgets:
    """Another label to compare with, the attribution method, the button and the views."""
    with gr.Accordion(t("insight.why.title"), open=False, elem_id="classify-why"):
        gr.Markdown(t("insight.why.intro"))
        with gr.Row():
            other = gr.Dropdown(choices=[], value=None, allow_custom_value=True, label=t("insight.why.other"),
                                elem_id="classify-why-other")
            methods = [(t(f"insight.why.method_{m.value}"), m.value) for m in AttributionMethod]
            attribution = gr.Radio(methods, value=AttributionMethod.INTEGRATED_GRADIENTS.value,
                                   label=t("insight.why.method"), elem_id="classify-why-method")
            run = gr.Button(t("insight.why.run"), variant="primary", elem_id="classify-why-run")
        errors = ErrorLine(ctx, "classify-why-errors")
        note = gr.Markdown(elem_id="classify-why-note")
        predicted = gr.HTML(elem_id="classify-why-predicted")
        other_html = gr.HTML(elem_id="classify-why-other-view")
        chart = gr.Plot(elem_id="classify-why-chart", show_label=False)
        download = gr.File(label=t("insight.export.images"), interactive=False, file_count="multiple",
                           elem_id="classify-why-download")
        svg_export_script()
    return WhyWidgets(other, attribution, run, errors, note, predicted, other_html, chart, download)


def wire_why(why: WhyHandlers, widgets: WhyWidgets, text: Any, settings: list[Any]) -> None:
    """Explain the text with the tab's settings (method, model, labels, template)."""
    errors = widgets.errors

    def explain(words: str, method: str, model: str, labels: str, template: str, other: str, attribution: str,
                progress: gr.Progress = gr.Progress()) -> tuple:
        view = why.explain(words, method, model, labels, template, other or "", attribution, request_lang(),
                           progress_reporter(progress))
        choices = [label for label in view.labels if label != view.predicted.label]
        kept = view.other.label if view.other is not None else (other or None)
        return (view.note, view.predicted_html, view.other_html, view.chart, [view.download, *view.images],
                gr.Dropdown(choices=choices, value=kept))

    inputs = [text, *settings, widgets.other, widgets.attribution]
    errors.watch(widgets.run.click(errors.guard(explain), inputs, widgets.outputs, api_visibility="private",
                                   concurrency_id=HEAVY))


def why_column_box() -> gr.Checkbox:
    """The batch's switch for the "why" column."""
    return gr.Checkbox(False, label=t("insight.why.column"), info=t("insight.why.column_info"),
                       elem_id="classify-why-column")


def wire_why_column(why: WhyHandlers, box: gr.Checkbox) -> None:
    """Remember the switch for this session (read by ``/classify_csv``, whose parameters stay as documented)."""

    def remember(on: bool, request: gr.Request) -> None:
        why.set_why_column(session_key(request), bool(on))

    box.change(remember, box, None, api_visibility="private", queue=False, show_progress="hidden")


def wire_explain_api(why: WhyHandlers) -> None:
    """The ``/explain_label`` endpoint (JSON only, no UI)."""

    def explain_label(text: str, model: str, label: str = "", method: str = "finetuned", labels: str = "",
                      template: str = DEFAULT_TEMPLATE, attribution: str = "integrated_gradients",
                      steps: int = DEFAULT_STEPS) -> dict:
        """Why this label? Per-token attributions of a classifier's label (log-probability) to the text's tokens.

        label: the label to explain (blank: the predicted one). method: finetuned (model: a fine-tuned classifier)
        | embeddings (zero-shot; labels: comma-separated, template with {}). attribution: integrated_gradients
        (Captum, steps in one batch; the attributions sum to the output minus the baseline's) | gradient_x_input.
        Returns tokens, attributions, label, predicted_label, probability, top_tokens, model, adapter and method.
        """
        return why.api_json(text, model, label, method, labels, template, attribution, steps, request_lang())

    gr.api(ui_errors(explain_label), api_name="explain_label", concurrency_id=HEAVY)
