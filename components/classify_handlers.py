"""The Classify tab's handlers: plain values in, plain values out (no layout), testable without a server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr

from components.batch_ui import BatchSpec, msg_reporter, run_batch
from components.classify_why_handlers import WHY_COLUMN, WhyHandlers
from components.i18n import request_lang, say
from pipelines.context import AppContext
from pipelines.errors import InputError
from pipelines.insight.export import exportable
from pipelines.messages import Msg
from pipelines.sessions import session_key
from pipelines.tasks.classification import (
    NliAvailability,
    Prediction,
    SingleResult,
    nli_availability,
)
from pipelines.tasks.classify import DEFAULT_MODELS, ClassifierSpec, Method, make_classifier

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

TAB = "classify"


def probability_chart(scores: dict[str, float]) -> go.Figure:
    """Horizontal bars of every label's probability, the most likely on top."""
    import plotly.graph_objects as go

    labels = list(scores)[::-1]
    values = [scores[label] for label in labels]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=[f"{v:.1%}" for v in values],
                           textposition="auto", marker_color="#2563eb"))
    fig.update_layout(xaxis={"range": [0, 1], "tickformat": ".0%"}, height=120 + 36 * len(labels),
                      margin={"l": 10, "r": 10, "t": 10, "b": 30})
    return fig


def label_metrics(results: pd.DataFrame, truth: list[str]) -> tuple[Msg, go.Figure | None]:
    """Accuracy and macro-F1 of the predicted labels against the label column, and the confusion matrix."""
    from pipelines.charts import confusion_figure
    from pipelines.tasks.metrics import classification_metrics

    scores = classification_metrics(truth, results["predicted_label"].tolist())
    if not scores:
        return Msg.of("classify.metrics_empty"), None
    note = Msg.of("classify.metrics", accuracy=f"{scores['accuracy']:.3f}", macro_f1=f"{scores['macro_f1']:.3f}",
                  count=scores["count"])
    return note, confusion_figure(scores["labels"], scores["matrix"])


class ClassifyHandlers:
    """Classify one text or every row of a table, with honest notes (cut text, low confidence, under-training)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.why = WhyHandlers(ctx)

    # ---- settings -----------------------------------------------------------------------------------------
    def nli(self) -> NliAvailability:
        """Whether NLI zero-shot can work here (local NLI models, or a reachable Hub)."""
        return nli_availability(self.ctx.config, self.ctx.manager.hub)

    def default_model(self, method: str, request: Any = None) -> str:
        """The model a method starts with: its default, the newest fine-tuned classifier (with login: of
        ``request``'s user), or a local NLI model."""
        if method == Method.FINETUNED:
            runs = [ref for _, ref in self.ctx.model_choices(("seq-cls",), self.user(request))
                    if ref.startswith("run:")]
            return runs[0] if runs else ""
        if method == Method.NLI:
            return self.nli().default_model
        return DEFAULT_MODELS.get(method, "")

    def model_notes(self, model: str, user: str | None = None) -> list[Msg]:
        """A note when ``model`` is a fine-tuning run (of ``user``, with login) whose metrics say it is
        under-trained."""
        ref = (model or "").strip()
        if not ref.startswith("run:"):
            return []
        try:
            info = self.ctx.runs.find(ref.removeprefix("run:"), user)
        except Exception:  # noqa: BLE001 - a missing run fails later with its own message
            return []
        return [Msg.of("classify.under_trained", run=info.name or info.id)] if info.metrics.get("under_trained") else []

    def user(self, request: Any = None) -> str | None:
        """The user of ``request`` (default: the request being handled) with login; None without login."""
        from components.users import user_of

        return user_of(self.ctx, request)

    # ---- one text -----------------------------------------------------------------------------------------
    def predict(self, text: str, method: str, model: str, labels: str, template: str,
                report: Any = None) -> SingleResult:
        """The prediction for one text and the notes about it (as messages)."""
        if not (text or "").strip():
            raise InputError("classify.empty_text")
        text, cut = self.ctx.limits.cut(text)
        spec = ClassifierSpec(method, model, labels, template)
        classifier = make_classifier(self.ctx.manager, spec, report, self.ctx.decisions, self.ctx.batcher)
        prediction = Prediction.of(classifier.classify([text])[0])
        notes = [cut, prediction.confidence.note(), *self.model_notes(model, self.user())]
        return SingleResult(prediction, tuple(n for n in notes if n is not None))

    def classify(self, text: str, method: str, model: str, labels: str, template: str,
                 progress: gr.Progress = gr.Progress()) -> tuple:
        """Classify one text. method: embeddings | nli | lm | finetuned; labels: comma-separated (zero-shot).

        Returns the top label, a plotly bar chart, ``{label: probability}`` (sums to 1) and a note (text cut, low
        confidence, an under-trained run).
        """
        lang = request_lang()
        result = self.predict(text, method, model, labels, template, msg_reporter(progress, lang))
        scores = result.prediction.scores
        note = "\n\n".join(f"⚠️ {say(n, lang)}" if n.key != "limits.text_cut" else say(n, lang)
                           for n in result.notes)
        return result.prediction.label, exportable(probability_chart(scores), "classify-probabilities"), scores, note

    # ---- a whole table ------------------------------------------------------------------------------------
    def batch_spec(self, method: str, model: str, labels: str, template: str, precision: str,
                   why: bool = False, user: str | None = None) -> BatchSpec:
        """What runs per mini-batch: the classifier, its CSV window, label metrics and its live notes; with
        ``why``, a column of the top-5 tokens toward each row's predicted label (integrated gradients)."""
        classifier = make_classifier(self.ctx.manager, ClassifierSpec(method, model, labels, template, precision),
                                     decisions=self.ctx.decisions)
        explain = self.why.why_rows(method, model, labels, template) if why else None

        def process(texts: list[str]) -> list[dict]:
            out = classifier.classify(texts)
            rows = [{"predicted_label": r["label"], "score": round(r["scores"][r["label"]], 4)} for r in out]
            if explain is not None:
                for row, cell in zip(rows, explain(texts, [r["label"] for r in out]), strict=True):
                    row[WHY_COLUMN] = cell
            return rows

        notes = [*self.model_notes(model, user), *([Msg.of("insight.why.batch_note")] if why else [])]
        return BatchSpec(process, classifier.window, label_metrics, stem="classified", notes=notes,
                         describe=classifier.describe)

    def classify_csv(self, file: str, text_column: str, label_column: str, method: str, model: str, labels: str,
                     template: str, request: gr.Request, precision: str = "auto",
                     progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        """Classify every row of a CSV/TSV/JSONL file; with a label column, report accuracy and macro-F1.

        precision (fine-tuned classifier): auto (on the CPU, the fastest of bfloat16/int8 that agrees with float32
        on 64 rows) | float32 | bfloat16 | int8.
        Yields (status, preview table, [results.csv, results.json], metrics, confusion matrix).
        """
        why = self.why.why_column(session_key(request))
        yield from run_batch(self.ctx, TAB, file, text_column, label_column,
                             lambda: self.batch_spec(method, model, labels, template, precision, why,
                                                     self.user(request)), request,
                             progress)
