"""Classify tab: a fine-tuned classifier or zero-shot labels (embeddings, NLI, LM) for one text or a whole CSV."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from components.batch_ui import BatchSpec, batch_section, run_batch, wire_stop
from components.common import examples, model_picker, progress_reporter, run_example, ui_errors
from components.i18n import localize, t
from pipelines.charts import confusion_figure
from pipelines.context import HEAVY, AppContext
from pipelines.errors import InputError
from pipelines.tasks.classify import DEFAULT_MODELS, DEFAULT_TEMPLATE, ClassifierSpec, make_classifier
from pipelines.tasks.metrics import classification_metrics
from pipelines.tasks.sentences import cap_text

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"

METHOD_CHOICES = [
    (t("classify.method_embeddings"), "embeddings"),
    (t("classify.method_nli"), "nli"),
    (t("classify.method_lm"), "lm"),
    (t("classify.method_finetuned"), "finetuned"),
]
PRECISION_CHOICES = [(t("classify.precision_auto"), "auto"), (t("classify.precision_float32"), "float32"),
                     (t("classify.precision_bfloat16"), "bfloat16"), (t("classify.precision_int8"), "int8")]


def probability_chart(scores: dict[str, float]) -> go.Figure:
    """Horizontal bars of every label's probability, the most likely on top."""
    labels = list(scores)[::-1]
    values = [scores[label] for label in labels]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=[f"{v:.1%}" for v in values],
                           textposition="auto", marker_color="#2563eb"))
    fig.update_layout(xaxis={"range": [0, 1], "tickformat": ".0%"}, height=120 + 36 * len(labels),
                      margin={"l": 10, "r": 10, "t": 10, "b": 30})
    return fig


def label_metrics(results: pd.DataFrame, truth: list[str]) -> tuple[str, go.Figure | None]:
    scores = classification_metrics(truth, results["predicted_label"].tolist())
    if not scores:
        return localize("The label column is empty, so no metrics were computed."), None
    text = (f"**Accuracy** {scores['accuracy']:.3f} · **Macro-F1** {scores['macro_f1']:.3f} "
            f"over {scores['count']} labelled rows")
    return text, confusion_figure(scores["labels"], scores["matrix"])


def build_classify_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Classify tab inside the current Blocks context."""
    gr.Markdown(t("classify.intro"))
    with gr.Row():
        method = gr.Radio(METHOD_CHOICES, value="embeddings", label=t("classify.method"))
        model = model_picker(ctx, kinds=("any",), value=DEFAULT_MODELS["embeddings"])
    with gr.Row():
        labels = gr.Textbox(value="sports, cooking, finance", label=t("classify.labels"),
                            info=t("classify.labels_info"))
        template = gr.Textbox(value=DEFAULT_TEMPLATE, label=t("classify.template"), info=t("classify.template_info"))
    with gr.Tab(t("classify.single")):
        text = gr.Textbox(lines=4, label=t("classify.text"), value="The team won the football match last night.",
                          elem_id="classify-text")
        go_btn = gr.Button(t("classify.run"), variant="primary", elem_id="classify-run")
        single_examples = examples(
            [["I can't wait to watch the match tonight!", "embeddings", "minilm-l6", "sports, cooking, finance"],
             ["Add the butter and stir until the sauce thickens.", "embeddings", "minilm-l6",
              "sports, cooking, finance"],
             ["The support team never answered my emails.", "lm", "smollm2-135m-instruct", "positive, negative"]],
            [text, method, model, labels])
        with gr.Row():
            top = gr.Textbox(label=t("classify.top"), interactive=False, elem_id="classify-top")
            note = gr.Markdown(elem_id="classify-note")
        chart = gr.Plot(label=t("classify.chart"), elem_id="classify-chart")
        scores = gr.JSON(label=t("classify.scores"))
    with gr.Tab(t("batch.title")):
        batch = batch_section("classify", "batch.label_column")
        precision = gr.Dropdown(PRECISION_CHOICES, value="auto", label=t("classify.precision"),
                                info=t("classify.precision_info"), elem_id="classify-precision")
        batch_examples = examples([[str(EXAMPLES_DIR / "sentiment.csv"), "text", "label", "embeddings", "minilm-l6",
                                    "positive, negative"]],
                                  [batch.file, batch.text_col, batch.ref_col, method, model, labels])

    def default_model(name: str) -> gr.Dropdown:
        if name == "finetuned":
            runs = ctx.model_choices(("seq-cls",))
            runs = [ref for _, ref in runs if ref.startswith("run:")]
            return gr.Dropdown(value=runs[0] if runs else "")
        return gr.Dropdown(value=DEFAULT_MODELS.get(name, ""))

    method.change(default_model, method, model, api_visibility="private", queue=False)

    @ui_errors
    def classify(text: str, method: str, model: str, labels: str, template: str,
                 progress: gr.Progress = gr.Progress()) -> tuple:
        """Classify one text. method: embeddings | nli | lm | finetuned; labels: comma-separated (zero-shot).

        Returns the top label, a plotly bar chart and ``{label: probability}`` (sums to 1).
        """
        if not (text or "").strip():
            raise InputError("Type or paste a text to classify.")
        text, cut = cap_text(text, ctx.config.max_input_chars)
        spec = ClassifierSpec(method, model, labels, template)
        result = make_classifier(ctx.manager, spec, progress_reporter(progress)).classify([text])[0]
        return result["label"], probability_chart(result["scores"]), result["scores"], cut or ""

    go_btn.click(classify, [text, method, model, labels, template], [top, chart, scores, note],
                 api_name="classify", concurrency_id=HEAVY)
    run_example(single_examples, classify, [text, method, model, labels, template], [top, chart, scores, note],
                concurrency_id=HEAVY)

    @ui_errors
    def classify_csv(file: str, text_column: str, label_column: str, method: str, model: str, labels: str,
                     template: str, request: gr.Request, precision: str = "auto",
                     progress: gr.Progress = gr.Progress()):
        """Classify every row of a CSV/TSV/JSONL file; with a label column, report accuracy and macro-F1.

        precision (fine-tuned classifier): auto (on the CPU, the fastest of bfloat16/int8 that agrees with float32
        on the first rows) | float32 | bfloat16 | int8.
        Yields (status, preview table, [results.csv, results.json], metrics, confusion matrix).
        """

        def make_spec() -> BatchSpec:
            classifier = make_classifier(ctx.manager, ClassifierSpec(method, model, labels, template, precision))
            max_chars = ctx.config.max_input_chars

            def process(texts: list[str]) -> list[dict]:
                out = classifier.classify([x[:max_chars] for x in texts])
                if hasattr(classifier, "describe"):
                    spec.notes[-1:] = [classifier.describe()]  # auto precision: which one it chose and why
                return [{"predicted_label": r["label"], "score": round(r["scores"][r["label"]], 4)} for r in out]

            spec = BatchSpec(process, getattr(classifier, "window", classifier.batch_size), label_metrics,
                             stem="classified", notes=[""] if hasattr(classifier, "describe") else [])
            return spec

        yield from run_batch(ctx, "classify", file, text_column, label_column, make_spec, request, progress)

    run_event = batch.run.click(
        classify_csv, [batch.file, batch.text_col, batch.ref_col, method, model, labels, template, precision],
        batch.outputs, api_name="classify_csv", concurrency_id=HEAVY,
    )
    run_example(batch_examples, classify_csv, [batch.file, batch.text_col, batch.ref_col, method, model, labels,
                                               template], batch.outputs, concurrency_id=HEAVY)
    wire_stop("classify", batch, run_event)
    return {"method": method, "model": model, "labels": labels, "text": text, "run": go_btn, "top": top,
            "chart": chart, "scores": scores, **{f"batch_{k}": v for k, v in vars(batch).items()}}
