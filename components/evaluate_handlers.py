"""The Evaluate tab's handlers: plain values in, plain values out (tables, dicts, figures), testable without a
server. The evaluation runs as a job in ``ctx.sessions`` (kind ``evaluate``); Stop keeps the rows scored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr

from components.batch_ui import msg_reporter
from components.i18n import request_lang, say, text
from pipelines.context import AppContext
from pipelines.errors import InputError
from pipelines.evaluation.job import KIND
from pipelines.evaluation.runner import Evaluation, EvaluationResult, start_evaluation
from pipelines.evaluation.spec import EvalOptions, infer_task
from pipelines.messages import Msg, has_key
from pipelines.sessions import session_key
from pipelines.user_files import keep_for

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

POLL_SECONDS = 0.5
MAX_PLOTS = 4
Outputs = tuple[str, Any, Any, Any, Any, Any, Any]


def metric_name(name: str, lang: str) -> str:
    key = f"evaluate.metric_{name}"
    return text(key, lang) if has_key(key) else name


def summary_frame(result: EvaluationResult | None, lang: str) -> pd.DataFrame:
    """One row per model: each metric as ``value [low, high]`` (the 95% bootstrap interval)."""
    import pandas as pd

    if result is None or not result.report.get("metrics"):
        return pd.DataFrame()
    rows = []
    for model, metrics in result.report["metrics"].items():
        row = {text("evaluate.column_model", lang): model}
        for name, value in metrics.items():
            shown = "—" if value.get("value") is None else f"{value['value']:.4g}"
            if "low" in value and value["low"] is not None:
                shown += f" [{value['low']:.4g}, {value['high']:.4g}]"
            row[metric_name(name, lang)] = shown
        rows.append(row)
    return pd.DataFrame(rows)


def pairs_frame(result: EvaluationResult | None, lang: str) -> pd.DataFrame:
    """One row per pair of models: the paired-bootstrap p-value of each metric's difference."""
    import pandas as pd

    if result is None:
        return pd.DataFrame()
    rows = [{text("evaluate.column_pair", lang): f"{pair['a']} ↔ {pair['b']}",
             **{metric_name(name, lang): "—" if p is None else p for name, p in pair["p_values"].items()}}
            for pair in result.report.get("pairs", [])]
    return pd.DataFrame(rows)


def changed_frame(result: EvaluationResult | None, a: str | None, b: str | None, lang: str) -> pd.DataFrame:
    """The rows that changed most between models ``a`` and ``b`` (headers in ``lang``)."""
    import pandas as pd

    if result is None or not a or not b:
        return pd.DataFrame()
    frame = pd.DataFrame(result.changed(a, b))
    return frame.rename(columns={c: column_name(c, lang) for c in frame.columns})


def column_name(column: str, lang: str) -> str:
    """A predictions column's header in ``lang``: ``row``/``input``/... or ``<model> | <output or score>``."""
    model, sep, part = column.rpartition(" | ")
    if sep:
        key = f"evaluate.column_{part}"
        return f"{model} | {text(key, lang) if has_key(key) else metric_name(part, lang)}"
    key = f"evaluate.column_{column}"
    return text(key, lang) if has_key(key) else column


def per_class_frame(result: EvaluationResult | None, lang: str) -> pd.DataFrame:
    """Precision, recall, F1 and support per label and model (classification only)."""
    import pandas as pd

    rows = []
    for model, detail in (result.report.get("detail", {}) if result else {}).items():
        for item in detail.get("per_class", []):
            rows.append({text("evaluate.column_model", lang): model, text("evaluate.column_label", lang): item["label"],
                         **{metric_name(k, lang): item[k] for k in ("precision", "recall", "f1", "support")}})
    return pd.DataFrame(rows)


def confusion_figures(result: EvaluationResult | None, lang: str) -> list[go.Figure | None]:
    """One confusion matrix per model (classification), padded with None to :data:`MAX_PLOTS`."""
    from pipelines.charts import confusion_figure

    figures: list[Any] = []
    for model, detail in (result.report.get("detail", {}) if result else {}).items():
        if "matrix" in detail:
            fig = confusion_figure(detail["labels"], detail["matrix"], lang)
            fig.update_layout(title=model)
            figures.append(fig)
    return (figures + [None] * MAX_PLOTS)[:MAX_PLOTS]


class EvaluateHandlers:
    """Evaluate two to four models on a held-out table, compare them, and download every prediction."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def columns(self, file: str | None, user: str | None = None) -> tuple[list[str], str | None, str | None, str]:
        """The table's columns and the guessed input column, target column and task (with login: a file over
        ``user``'s upload quota is refused; the rows are checked at the start, against the rows evaluated)."""
        if not file:
            return [], None, None, "auto"
        table = self.ctx.read_upload(file, user, rows_used=0)
        task, source, target = infer_task(table, "auto", None, None)
        return table.columns, source, target, task.value

    def start(self, file: Any, input_column: str | None, target_column: str | None, models: Any, task: str | None,
              options: EvalOptions, session: str, user: str | None = None) -> Evaluation:
        """Start the evaluation; with login, ``user``'s upload, rows (those evaluated) and jobs quotas first."""
        if not file:
            raise InputError("evaluate.no_file")
        if user is not None:
            self.ctx.read_upload(file, user, rows_used=options.max_rows)
            self.ctx.quotas.start_session_job(self.ctx.runs, self.ctx.sessions, session, KIND, user)
        return start_evaluation(self.ctx, session, file, input_column, target_column, models, task, options)

    def outputs(self, evaluation: Evaluation, lang: str, final: bool, user: str | None = None) -> Outputs:
        """(status, summary, p-values, report JSON, changed rows, files, result) for the UI and the API; with login
        the files go to ``user``'s folder (only they and admins can download them)."""
        job = evaluation.job
        status = say(job.status(), lang)
        if not final:
            return f"{say(job.progress(), lang)} — {say(job.phase, lang)}", *(gr.skip(),) * 6
        result = evaluation.result(lang=lang)
        result.files = keep_for(user, result.files, "lmw-evaluate-", move=True)
        notes = [*result.notes, Msg.of("evaluate.resample_note", resamples=result.report.get("resamples", 0),
                                       seed=result.report.get("seed", 0))]
        status += "\n\n" + "\n".join(f"- {say(n, lang)}" for n in notes)
        models = result.report.get("models", [])
        a, b = (models[0], models[1]) if len(models) > 1 else (None, None)
        return (status, summary_frame(result, lang), pairs_frame(result, lang), result.public(),
                changed_frame(result, a, b, lang), result.files or None, result)

    def evaluate(self, file: Any, input_column: str | None, target_column: str | None, models: Any, task: str,
                 max_rows: float, max_new_tokens: float, resamples: float, seed: float, request: gr.Request,
                 progress: gr.Progress = gr.Progress()) -> Iterator[Outputs]:
        """Evaluate models (1-4: embedded names, run:<id>, folders, hub ids, remote:<endpoint>/<model> for
        generation) on an uploaded CSV/TSV/JSONL.

        task: auto | classification | generation | lm. Yields (status, metrics table with 95% intervals, paired
        p-values, report JSON, rows that changed between the first two models, [predictions.csv,
        evaluation.json, and for each run:<id> its report as HTML and Markdown]) while it runs and at the end.
        """
        lang = request_lang(request)
        options = EvalOptions(int(max_rows or 0), int(max_new_tokens or 0), int(resamples or 0), int(seed or 0))
        from components.users import user_of

        user = user_of(self.ctx, request)
        evaluation = self.start(file, input_column, target_column, models, task, options, session_key(request), user)
        report = msg_reporter(progress, lang)
        job = evaluation.job
        job.finalize = lambda: self.outputs(evaluation, lang, final=True, user=user)
        shown = None
        try:
            while not job.wait(POLL_SECONDS):
                progress_msg = job.progress()
                report(job.done / max(1, job.total), progress_msg)
                if (progress_msg, job.phase) != shown:
                    shown = (progress_msg, job.phase)
                    yield self.outputs(evaluation, lang, final=False)
        finally:
            job.stop()  # cancelled or failed: stop the worker, keep what is scored
        if job.error and not job.done:
            raise InputError(job.error)
        yield self.outputs(evaluation, lang, final=True, user=user)

    def stop(self, request: gr.Request) -> Outputs:
        """Stop this session's evaluation and report on the rows every model has scored."""
        lang = request_lang(request)
        job = self.ctx.sessions.stop(session_key(request), KIND)
        if job is None or job.finalize is None:
            return text("evaluate.nothing_running", lang), *(gr.skip(),) * 6
        job.wait(120)
        return job.finalize()
