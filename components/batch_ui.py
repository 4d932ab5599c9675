"""CSV batch mode shared by the Classify, Summarize and Extract tabs: upload, pick columns, run with progress
and Stop, preview, download CSV/JSON, and metrics when a label/reference column is given."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from components.i18n import localize, t
from pipelines.context import AppContext
from pipelines.errors import InputError
from pipelines.tables import read_table
from pipelines.tasks.batch import JOBS, BatchJob, ProcessFn, pick_column, result_frame, write_outputs

PREVIEW_ROWS = 100
POLL_SECONDS = 0.5
MetricsFn = Callable[[pd.DataFrame, list[str]], tuple[str, go.Figure | None]]


@dataclass
class BatchSpec:
    """What a tab runs per mini-batch, and how it scores the results against the reference column."""

    process: ProcessFn
    batch_size: int = 16
    metrics: MetricsFn | None = None
    stem: str = "results"
    notes: list[str] = field(default_factory=list)


@dataclass
class BatchWidgets:
    file: gr.File
    text_col: gr.Dropdown
    ref_col: gr.Dropdown | None
    run: gr.Button
    stop: gr.Button
    status: gr.Markdown
    metrics: gr.Markdown
    plot: gr.Plot
    preview: gr.Dataframe
    downloads: gr.File

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.status, self.preview, self.downloads, self.metrics, self.plot]


def batch_section(tab: str, ref_label_key: str | None) -> BatchWidgets:
    """The CSV batch widgets (inside the caller's layout); ``ref_label_key`` names the optional metric column."""
    gr.Markdown(t("batch.intro"))
    file = gr.File(label=t("batch.file"), file_types=[".csv", ".tsv", ".txt", ".jsonl"], type="filepath")
    with gr.Row():
        text_col = gr.Dropdown([], label=t("batch.text_column"), allow_custom_value=True, interactive=True)
        ref_col = (gr.Dropdown([], label=t(ref_label_key), allow_custom_value=True, interactive=True)
                   if ref_label_key else None)
    with gr.Row():
        run = gr.Button(t("batch.run"), variant="primary", elem_id=f"{tab}-batch-run")
        stop = gr.Button(t("batch.stop"), variant="stop", elem_id=f"{tab}-batch-stop")
    status = gr.Markdown(elem_id=f"{tab}-batch-status")
    metrics = gr.Markdown(elem_id=f"{tab}-batch-metrics")
    plot = gr.Plot(label=t("batch.confusion"), visible=ref_label_key is not None, elem_id=f"{tab}-batch-plot")
    preview = gr.Dataframe(label=t("batch.preview"), interactive=False, wrap=True, max_height=400)
    downloads = gr.File(label=t("batch.downloads"), file_count="multiple", interactive=False,
                        elem_id=f"{tab}-batch-files")
    widgets = BatchWidgets(file, text_col, ref_col, run, stop, status, metrics, plot, preview, downloads)

    def columns(path: str | None) -> tuple:
        if not path:
            return (gr.Dropdown(choices=[], value=None),) * (2 if ref_col else 1)
        try:
            table = read_table(path)
        except InputError as exc:
            raise gr.Error(localize(str(exc))) from None
        cols = table.columns
        out = [gr.Dropdown(choices=cols, value=pick_column(table, None))]
        if ref_col is not None:
            guess = pick_column(table, None, "reference", required=False)
            out.append(gr.Dropdown(choices=["", *cols], value=guess or ""))
        return tuple(out)

    file.upload(columns, file, [text_col, ref_col] if ref_col else [text_col], api_visibility="private")
    return widgets


def _session_key(tab: str, request: gr.Request | None) -> str:
    return f"{tab}:{getattr(request, 'session_hash', None) or 'local'}"


def _finish(job: BatchJob, frame: pd.DataFrame, refs: list[str] | None, spec: BatchSpec) -> tuple:
    """Final outputs: status, preview, the two download files, metrics text and figure."""
    results = result_frame(frame, job.results)
    files = write_outputs(results, spec.stem) if job.done else None
    metrics_text, figure = "", None
    if refs is not None and spec.metrics is not None and job.done:
        metrics_text, figure = spec.metrics(results, refs[: job.done])
    status = localize(job.status())
    notes = [n for n in spec.notes if n]
    if notes:
        status += "\n\n" + "\n".join(f"- {localize(n)}" for n in notes)
    return status, results.head(PREVIEW_ROWS), files, metrics_text, figure


def run_batch(ctx: AppContext, tab: str, file: str | None, text_column: str | None, ref_column: str | None,
              make_spec: Callable[[], BatchSpec], request: gr.Request | None = None,
              progress: gr.Progress | None = None) -> Iterator[tuple]:
    """Generator body of a ``*_csv`` handler: yields (status, preview, files, metrics, plot) while it runs."""
    if not file:
        raise InputError("Upload a CSV, TSV or JSONL file first.")
    table = ctx.read_upload(file)
    text_col = pick_column(table, text_column)
    ref_col = pick_column(table, ref_column, required=False) if ref_column else None
    spec = make_spec()
    spec.notes = [*table.notes, *spec.notes]
    frame = table.frame
    refs = frame[ref_col].tolist() if ref_col else None
    job = BatchJob(frame[text_col].tolist(), spec.process, spec.batch_size)
    job.finalize = lambda: _finish(job, frame, refs, spec)
    key = _session_key(tab, request)
    JOBS.put(key, job)
    job.start()
    shown = -1
    try:
        while not job.wait(POLL_SECONDS):
            if progress is not None:
                progress(job.done / max(1, job.total), desc=f"{job.done}/{job.total} rows")
            if job.done != shown:
                shown = job.done
                preview = result_frame(frame, job.results).tail(PREVIEW_ROWS)
                yield localize(job.status()), preview, gr.skip(), gr.skip(), gr.skip()
    finally:
        job.stop()  # the handler was cancelled or failed: stop the worker, keep what is done
    yield _finish(job, frame, refs, spec)


def stop_batch(tab: str, request: gr.Request | None = None) -> tuple:
    """Stop this session's running job, wait for its current mini-batch, and return what is done."""
    job = JOBS.get(_session_key(tab, request))
    if job is None:
        return localize("Nothing is running."), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    job.stop()
    job.wait(120)
    return job.finalize() if job.finalize else (job.status(), gr.skip(), gr.skip(), gr.skip(), gr.skip())


def wire_stop(tab: str, widgets: BatchWidgets, run_event) -> None:
    """Stop button: cancel the running handler and show/download the rows already done."""

    def stop(request: gr.Request) -> tuple:
        return stop_batch(tab, request)

    widgets.stop.click(stop, None, widgets.outputs, cancels=[run_event], api_visibility="private")
