"""CSV batch mode shared by the Classify, Summarize and Extract tabs: upload, pick columns, run with progress
and Stop, preview, download CSV/JSON, and metrics when a label/reference column is given.

The running job is a :class:`~pipelines.tasks.batch.BatchJob` kept in ``ctx.sessions`` under the browser session
and ``batch:<tab>``: Stop finds it there, and closing the page stops it (``Sessions.end``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr

from components.common import ErrorLine, run_example
from components.i18n import request_lang, say, t, text
from pipelines.context import HEAVY, AppContext
from pipelines.errors import InputError
from pipelines.messages import Msg, has_key
from pipelines.sessions import session_key
from pipelines.tasks.batch import BatchJob, ProcessFn, batch_kind, pick_column, result_frame, write_outputs
from pipelines.user_files import output_folder

if TYPE_CHECKING:
    import pandas as pd

PREVIEW_ROWS = 100
POLL_SECONDS = 0.5
Note = Msg | str
MetricsFn = Callable[["pd.DataFrame", list[str]], tuple[Note, Any]]


@dataclass
class BatchSpec:
    """What a tab runs per mini-batch, and how it scores the results against the reference column.

    ``notes`` are shown under the status once the run ends; ``describe`` (optional) gives a note that can change
    while the job runs (e.g. the precision auto chose), read when the status is built.
    """

    process: ProcessFn
    batch_size: int = 16
    metrics: MetricsFn | None = None
    stem: str = "results"
    notes: list[Note] = field(default_factory=list)
    describe: Callable[[], Note | None] | None = None

    def all_notes(self) -> list[Note]:
        live = self.describe() if self.describe is not None else None
        return [n for n in [*self.notes, live] if n]


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
    errors: ErrorLine | None = None

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.status, self.preview, self.downloads, self.metrics, self.plot]


def msg_reporter(progress: gr.Progress | None, lang: str) -> Callable[[float, Note], None]:
    """Adapt a ``gr.Progress`` to the pipelines' ``(fraction, message)`` callback, rendering keyed messages."""

    def report(fraction: float, desc: Note) -> None:
        if progress is not None:
            progress(fraction, desc=say(desc, lang) if isinstance(desc, Msg) else desc)

    return report


def batch_section(ctx: AppContext, tab: str, ref_label_key: str | None) -> BatchWidgets:
    """The CSV batch widgets (inside the caller's layout); ``ref_label_key`` names the optional metric column.

    The section has its own error line (``widgets.errors``): guard the run handler with it; :func:`wire_stop`
    watches the run event.
    """
    gr.Markdown(t("batch.intro"))
    file = gr.File(label=t("batch.file"), file_types=[".csv", ".tsv", ".txt", ".jsonl"], type="filepath",
                   elem_id=f"{tab}-batch-file")
    with gr.Row():
        text_col = gr.Dropdown([], label=t("batch.text_column"), allow_custom_value=True, interactive=True)
        ref_col = (gr.Dropdown([], label=t(ref_label_key), allow_custom_value=True, interactive=True)
                   if ref_label_key else None)
    with gr.Row():
        run = gr.Button(t("batch.run"), variant="primary", elem_id=f"{tab}-batch-run")
        stop = gr.Button(t("batch.stop"), variant="stop", elem_id=f"{tab}-batch-stop")
    errors = ErrorLine(ctx, f"{tab}-batch-errors")
    status = gr.Markdown(elem_id=f"{tab}-batch-status")
    metrics = gr.Markdown(elem_id=f"{tab}-batch-metrics")
    plot = gr.Plot(label=t("batch.confusion"), visible=ref_label_key is not None, elem_id=f"{tab}-batch-plot")
    preview = gr.Dataframe(label=t("batch.preview"), interactive=False, wrap=True, max_height=400,
                           elem_id=f"{tab}-batch-preview")
    downloads = gr.File(label=t("batch.downloads"), file_count="multiple", interactive=False,
                        elem_id=f"{tab}-batch-files")
    widgets = BatchWidgets(file, text_col, ref_col, run, stop, status, metrics, plot, preview, downloads, errors)

    def columns(path: str | None, request: gr.Request) -> tuple:
        """Fill the column pickers with the uploaded table's columns (best guesses selected); with login, a file
        over the user's upload or rows quota is refused here already."""
        from components.users import user_of

        if not path:
            return (gr.Dropdown(choices=[], value=None),) * (2 if ref_col else 1)
        table = ctx.read_upload(path, user_of(ctx, request))
        cols = table.columns
        out = [gr.Dropdown(choices=cols, value=pick_column(table, None))]
        if ref_col is not None:
            guess = pick_column(table, None, "reference", required=False)
            out.append(gr.Dropdown(choices=["", *cols], value=guess or ""))
        return tuple(out)

    upload = file.upload(errors.guard(columns), file, [text_col, ref_col] if ref_col else [text_col],
                         api_visibility="private")
    errors.watch(upload)
    return widgets


def preview_frame(results: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The first rows of ``results`` with the result columns' headers in ``lang`` (the downloads keep the names)."""
    head = results.head(PREVIEW_ROWS)
    names = {c: text(f"batch.column_{c}", lang) for c in head.columns if isinstance(c, str) and
             has_key(f"batch.column_{c}")}
    return head.rename(columns=names)


def _texts(values: list[Any]) -> list[str]:
    return ["" if v is None else v if isinstance(v, str) else str(v) for v in values]


@dataclass
class BatchRun:
    """One run's job, table, reference column and spec: builds the outputs shown while it runs and at the end."""

    job: BatchJob
    frame: Any
    refs: list[str] | None
    spec: BatchSpec
    lang: str
    user: str | None = None  # with login: the downloads go to this user's folder (only they can fetch them)

    def status(self) -> str:
        return say(self.job.status(), self.lang)

    def running(self) -> tuple:
        preview = preview_frame(result_frame(self.frame, self.job.results).tail(PREVIEW_ROWS), self.lang)
        return self.status(), preview, gr.skip(), gr.skip(), gr.skip()

    def final(self) -> tuple:
        """Final outputs: status with notes, preview, the two download files, metrics text and figure."""
        job, spec = self.job, self.spec
        results = result_frame(self.frame, job.results)
        files = write_outputs(results, spec.stem, output_folder(self.user, "lmw-batch-")) if job.done else None
        metrics_text, figure = "", None
        if self.refs is not None and spec.metrics is not None and job.done:
            note, figure = spec.metrics(results, self.refs[: job.done])
            metrics_text = say(note, self.lang)
        status = self.status()
        notes = spec.all_notes()
        if notes:
            status += "\n\n" + "\n".join(f"- {say(n, self.lang)}" for n in notes)
        return status, preview_frame(results, self.lang), files, metrics_text, figure


def run_batch(ctx: AppContext, tab: str, file: str | None, text_column: str | None, ref_column: str | None,
              make_spec: Callable[[], BatchSpec], request: gr.Request | None = None,
              progress: gr.Progress | None = None) -> Iterator[tuple]:
    """Generator body of a ``*_csv`` handler: yields (status, preview, files, metrics, plot) while it runs.

    Rows longer than ``ctx.limits.max_input_chars`` are cut (one note says how many).
    """
    if not file:
        raise InputError("batch.no_file")
    from components.users import user_of

    lang = request_lang(request)
    user = user_of(ctx, request)  # with login: the user's upload, rows and jobs quotas
    table = ctx.read_upload(file, user)
    text_col = pick_column(table, text_column)
    ref_col = pick_column(table, ref_column, required=False) if ref_column else None
    spec = make_spec()
    frame = table.frame
    raw = _texts(frame[text_col].tolist())
    texts = ctx.limits.cut_many(raw)
    cut = sum(len(a) != len(b) for a, b in zip(raw, texts, strict=True))
    cut_note = [Msg.of("batch.rows_cut", count=cut, limit=f"{ctx.limits.max_input_chars:,}")] if cut else []
    spec.notes = [*table.notes, *cut_note, *spec.notes]
    refs = _texts(frame[ref_col].tolist()) if ref_col else None
    job = BatchJob(texts, spec.process, spec.batch_size)
    batch = BatchRun(job, frame, refs, spec, lang, user)
    job.finalize = batch.final
    ctx.quotas.start_session_job(ctx.runs, ctx.sessions, session_key(request), batch_kind(tab), user)
    ctx.sessions.put(session_key(request), batch_kind(tab), job)
    job.start()
    shown = -1
    report = msg_reporter(progress, lang)
    try:
        while not job.wait(POLL_SECONDS):
            report(job.done / max(1, job.total), Msg.of("batch.progress", done=job.done, total=job.total))
            if job.done != shown:
                shown = job.done
                yield batch.running()
    finally:
        job.stop()  # the handler was cancelled or failed: stop the worker, keep what is done
    yield batch.final()


def stop_batch(ctx: AppContext, tab: str, request: gr.Request | None = None) -> tuple:
    """Stop this session's running job, wait for its current mini-batch, and return what is done."""
    job = ctx.sessions.stop(session_key(request), batch_kind(tab))
    if job is None:
        return text("batch.nothing_running", request_lang(request)), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    job.wait(120)
    if job.finalize is not None:
        return job.finalize()
    return say(job.status(), request_lang(request)), gr.skip(), gr.skip(), gr.skip(), gr.skip()


def wire_stop(ctx: AppContext, tab: str, widgets: BatchWidgets, run_event: Any) -> None:
    """Stop button: cancel the running handler and show/download the rows already done; errors go to the line."""

    def stop(request: gr.Request) -> tuple:
        return stop_batch(ctx, tab, request)

    if widgets.errors is not None:
        widgets.errors.watch(run_event)
    widgets.stop.click(stop, None, widgets.outputs, cancels=[run_event], api_visibility="private")


def wire_batch(ctx: AppContext, tab: str, widgets: BatchWidgets, handler: Callable[..., Any], inputs: list[Any],
               api_name: str, example: gr.Examples, extra_inputs: tuple[Any, ...] = ()) -> Any:
    """Run (the tab's public ``api_name`` CSV endpoint), its clickable example, Stop, and the batch's error line.

    ``extra_inputs`` are read by the Run button only (the example fills ``inputs``). Returns the run event.
    """
    guarded = widgets.errors.guard(handler)
    run_event = widgets.run.click(guarded, [*inputs, *extra_inputs], widgets.outputs, api_name=api_name,
                                  concurrency_id=HEAVY)
    widgets.errors.watch(run_example(example, guarded, inputs, widgets.outputs, concurrency_id=HEAVY))
    wire_stop(ctx, tab, widgets, run_event)
    return run_event
