"""Classify tab: a fine-tuned classifier or zero-shot labels (embeddings, NLI, LM) for one text or a whole CSV.

Layout and event wiring only; the handlers are :class:`components.classify_handlers.ClassifyHandlers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from components.batch_ui import BatchWidgets, batch_section, wire_batch
from components.classify_corrections import build_corrections, wire_corrections
from components.classify_handlers import ClassifyHandlers, label_metrics, probability_chart
from components.classify_why import why_column_box, why_section, wire_explain_api, wire_why, wire_why_column
from components.common import ErrorLine, examples, model_picker, run_example
from components.i18n import t
from pipelines.context import AppContext
from pipelines.models.kinds import CLASSIFY_PRECISIONS, Precision
from pipelines.tasks.classify import DEFAULT_MODELS, DEFAULT_TEMPLATE, Method
from pipelines.tasks.microbatch import BATCHED

__all__ = ["build_classify_tab", "label_metrics", "probability_chart"]
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
LABELS = "sports, cooking, finance"


def method_choices(nli: bool) -> list[tuple[gr.i18n.I18nData, str]]:
    """The method options; NLI only where an NLI model can be used."""
    methods = [Method.EMBEDDINGS, Method.NLI, Method.LM, Method.FINETUNED]
    return [(t(f"classify.method_{m.value}"), m.value) for m in methods if nli or m != Method.NLI]


def precision_choices() -> list[tuple[gr.i18n.I18nData, str]]:
    return [(t(f"classify.precision_{p.value}"), p.value) for p in CLASSIFY_PRECISIONS]


@dataclass
class Settings:
    method: gr.Radio
    model: gr.Dropdown
    labels: gr.Textbox
    template: gr.Textbox
    nli_note: gr.Markdown

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [self.method, self.model, self.labels, self.template]


@dataclass
class Single:
    text: gr.Textbox
    run: gr.Button
    examples: gr.Examples
    errors: ErrorLine
    top: gr.Textbox
    note: gr.Markdown
    chart: gr.Plot
    scores: gr.JSON

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.top, self.chart, self.scores, self.note]


def _settings(ctx: AppContext, handlers: ClassifyHandlers) -> Settings:
    nli = handlers.nli()
    with gr.Row():
        with gr.Column():
            method = gr.Radio(method_choices(nli.available), value=Method.EMBEDDINGS.value,
                              label=t("classify.method"), elem_id="classify-method")
            nli_note = gr.Markdown(t("classify.nli_unavailable"), visible=not nli.available,
                                   elem_id="classify-nli-note")
        model = model_picker(ctx, kinds=("any",), value=DEFAULT_MODELS[Method.EMBEDDINGS.value],
                             elem_id="classify-model")
    with gr.Row():
        labels = gr.Textbox(value=LABELS, label=t("classify.labels"), info=t("classify.labels_info"))
        template = gr.Textbox(value=DEFAULT_TEMPLATE, label=t("classify.template"), info=t("classify.template_info"))
    return Settings(method, model, labels, template, nli_note)


def _single(ctx: AppContext, settings: Settings) -> Single:
    text = gr.Textbox(lines=4, label=t("classify.text"), value="The team won the football match last night.",
                      elem_id="classify-text")
    run = gr.Button(t("classify.run"), variant="primary", elem_id="classify-run")
    errors = ErrorLine(ctx, "classify-errors")
    ex = examples(
        [["I can't wait to watch the match tonight!", "embeddings", "minilm-l6", LABELS],
         ["Add the butter and stir until the sauce thickens.", "embeddings", "minilm-l6", LABELS],
         ["The support team never answered my emails.", "lm", "smollm2-135m-instruct", "positive, negative"]],
        [text, settings.method, settings.model, settings.labels])
    with gr.Row():
        top = gr.Textbox(label=t("classify.top"), interactive=False, elem_id="classify-top")
        note = gr.Markdown(elem_id="classify-note")
    chart = gr.Plot(label=t("classify.chart"), elem_id="classify-chart")
    scores = gr.JSON(label=t("classify.scores"))
    return Single(text, run, ex, errors, top, note, chart, scores)


def _wire_settings(handlers: ClassifyHandlers, settings: Settings) -> None:
    def default(method: str, request: gr.Request) -> gr.Dropdown:
        return gr.Dropdown(value=handlers.default_model(method, request))  # with login: the user's newest run

    settings.method.change(default, settings.method, settings.model, api_visibility="private", queue=False)
    root = gr.context.Context.root_block
    if root is not None:  # the page's load: NLI may have become possible (a model added, the Hub reachable)

        def refresh(method: str) -> tuple:
            nli = handlers.nli()
            value = method if nli.available or method != Method.NLI else Method.EMBEDDINGS.value
            return gr.Radio(choices=method_choices(nli.available), value=value), gr.Markdown(visible=not nli.available)

        root.load(refresh, settings.method, [settings.method, settings.nli_note], api_visibility="private",
                  queue=False, show_progress="hidden")


def _wire_single(handlers: ClassifyHandlers, settings: Settings, single: Single) -> None:
    classify = single.errors.guard(handlers.classify)
    inputs = [single.text, *settings.inputs]
    # Several users' texts at once run in one forward pass (ctx.batcher): they may be in progress together.
    together = {"concurrency_id": BATCHED, "concurrency_limit": handlers.ctx.config.microbatch_max}
    event = single.run.click(classify, inputs, single.outputs, api_name="classify", **together)
    clicked = run_example(single.examples, classify, inputs, single.outputs, **together)
    single.errors.watch(event, clicked)


def _batch(ctx: AppContext, settings: Settings) -> tuple[BatchWidgets, gr.Dropdown, gr.Examples, gr.Checkbox]:
    batch = batch_section(ctx, "classify", "batch.label_column")
    with gr.Row():
        precision = gr.Dropdown(precision_choices(), value=Precision.AUTO.value, label=t("classify.precision"),
                                info=t("classify.precision_info"), elem_id="classify-precision")
        why_column = why_column_box()
    ex = examples([[str(EXAMPLES_DIR / "sentiment.csv"), "text", "label", "embeddings", "minilm-l6",
                    "positive, negative"]],
                  [batch.file, batch.text_col, batch.ref_col, settings.method, settings.model, settings.labels])
    return batch, precision, ex, why_column


def _wire_batch(ctx: AppContext, handlers: ClassifyHandlers, settings: Settings, batch: BatchWidgets,
                precision: gr.Dropdown, ex: gr.Examples) -> None:
    inputs = [batch.file, batch.text_col, batch.ref_col, *settings.inputs]
    wire_batch(ctx, "classify", batch, handlers.classify_csv, inputs, "classify_csv", ex, (precision,))


def build_classify_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Classify tab inside the current Blocks context."""
    handlers = ClassifyHandlers(ctx)
    gr.Markdown(t("classify.intro"))
    settings = _settings(ctx, handlers)
    with gr.Tab(t("classify.single")):
        single = _single(ctx, settings)
        why = why_section(ctx)
    with gr.Tab(t("batch.title")):
        batch, precision, batch_examples, why_column = _batch(ctx, settings)
        corrections = build_corrections(ctx)  # fix wrong rows, retrain (after a labelled batch run)
    _wire_settings(handlers, settings)
    _wire_single(handlers, settings, single)
    _wire_batch(ctx, handlers, settings, batch, precision, batch_examples)
    wire_why(handlers.why, why, single.text, settings.inputs)
    wire_why_column(handlers.why, why_column)
    wire_corrections(ctx, corrections, batch.downloads, (batch.text_col, batch.ref_col), settings.model)
    wire_explain_api(handlers.why)
    return {"method": settings.method, "model": settings.model, "labels": settings.labels, "text": single.text,
            "run": single.run, "top": single.top, "chart": single.chart, "scores": single.scores,
            "precision": precision, "why_run": why.run, "why_predicted": why.predicted, "why_chart": why.chart,
            "why_column": why_column, **{f"batch_{k}": v for k, v in vars(batch).items() if k != "errors"}}
