"""Fix wrong rows, retrain: the corrections panel under the Classify tab's batch section.

It appears after a batch run with a label column: an editable table of the wrong and low-confidence rows (new label,
exclude), one button that starts a new fine-tune on the original data plus the corrections (public endpoint
``/corrections``), Stop, the before/after line and the corrected files. Handlers:
:class:`components.classify_corrections_handlers.CorrectionsHandlers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from components.classify_corrections_handlers import CorrectionsHandlers
from components.common import ErrorLine
from components.i18n import request_lang, t, text
from pipelines.context import AppContext
from pipelines.sessions import session_key

TRAINING = "training"  # the Fine-tune tab's concurrency group: the same training slot and stream limit
TRAINING_STREAMS = 4
DATATYPES = ("number", "str", "str", "str", "number", "str", "bool")


@dataclass
class CorrectionsPanel:
    box: gr.Column
    note: gr.Markdown
    table: gr.Dataframe
    preset: gr.Radio
    retrain: gr.Button
    stop: gr.Button
    errors: ErrorLine
    status: gr.Markdown
    run_id: gr.Textbox
    files: gr.File
    result: gr.File  # hidden: the batch result the table came from
    model: gr.Textbox  # hidden: the batch's model, text and label columns
    text_col: gr.Textbox
    label_col: gr.Textbox

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [self.result, self.table, self.model, self.text_col, self.label_col, self.preset]

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.run_id, self.status, self.files]


def build_corrections(ctx: AppContext, prefix: str = "corrections") -> CorrectionsPanel:
    """The panel (hidden until a labelled batch or Evaluate run has finished), inside the caller's layout;
    ``prefix`` starts its element ids (one panel per tab)."""
    with gr.Column(visible=False, elem_id=f"{prefix}-panel") as box:
        gr.Markdown(t("corrections.title"))
        note = gr.Markdown(elem_id=f"{prefix}-note")
        table = gr.Dataframe(interactive=True, datatype=list(DATATYPES), static_columns=[0, 1, 2, 3, 4], wrap=True,
                             max_height=420, elem_id=f"{prefix}-table")
        with gr.Row():
            preset = gr.Radio([(t("finetune.quick"), "quick"), (t("finetune.balanced"), "balanced"),
                               (t("finetune.thorough"), "thorough")], value="quick", label=t("corrections.preset"),
                              info=t("corrections.preset_info"), elem_id=f"{prefix}-preset")
        with gr.Row():
            retrain = gr.Button(t("corrections.retrain"), variant="primary", elem_id=f"{prefix}-retrain")
            stop = gr.Button(t("corrections.stop"), variant="stop", elem_id=f"{prefix}-stop")
        errors = ErrorLine(ctx, f"{prefix}-errors")
        status = gr.Markdown(elem_id=f"{prefix}-status")
        with gr.Row():
            run_id = gr.Textbox(label=t("corrections.run_id"), interactive=False, elem_id=f"{prefix}-run")
            files = gr.File(label=t("corrections.files"), file_count="multiple", interactive=False,
                            elem_id=f"{prefix}-files")
        result = gr.File(visible=False)
        model, text_col, label_col = (gr.Textbox(visible=False) for _ in range(3))
    return CorrectionsPanel(box, note, table, preset, retrain, stop, errors, status, run_id, files, result, model,
                            text_col, label_col)


def wire_corrections(ctx: AppContext, panel: CorrectionsPanel, downloads: gr.File,
                     columns: tuple[gr.components.Component, gr.components.Component] | None = None,
                     model: gr.components.Component | None = None, api_name: str | None = "corrections") -> None:
    """Fill the panel when a run's download files arrive (a Classify batch: with its text and label ``columns``
    and ``model`` pickers; an Evaluate run: its predictions name both); Retrain and Stop. ``api_name`` None keeps
    the Retrain event private (the public ``/corrections`` is the Classify tab's)."""
    handlers = CorrectionsHandlers(ctx)

    def show(files: Any, text_col: str | None, label_col: str | None, model_ref: str | None, lang: str) -> tuple:
        view = handlers.table(files, text_col, label_col, lang)
        if view is None:
            return (gr.Column(visible=False), *(gr.skip(),) * 6)
        return (gr.Column(visible=True), view.note, gr.Dataframe(value=view.rows, headers=view.headers),
                view.file, view.model or model_ref or "", view.text_column, view.label_column)

    def fill_batch(files: Any, text_col: str | None, label_col: str | None, model_ref: str | None,
                   request: gr.Request) -> tuple:
        return show(files, text_col, label_col, model_ref, request_lang(request))

    def fill_evaluation(files: Any, request: gr.Request) -> tuple:
        return show(files, None, None, None, request_lang(request))

    def corrections(result: Any, edits: Any, model_ref: str, text_col: str, label_col: str, preset: str,
                    request: gr.Request):
        """Retrain with corrected labels: ``result`` is the ``classified.csv`` of ``/classify_csv`` (with a label
        column); ``edits`` the corrections table ``{"headers": [...], "data": [[row, text, gold, predicted,
        confidence, new_label, exclude], ...]}`` (``row`` 1-based; only row, new_label and exclude are read);
        ``model_ref`` the batch's model (``run:<id>``: its settings and training rows are reused; else ``preset``
        on a trainable base). Streams (run id, status, [corrected.csv, training.csv]); the last status is the
        before/after line."""
        from components.users import user_of

        yield from handlers.retrain(result, edits, model_ref, text_col, label_col, preset, session_key(request),
                                    request_lang(request), user_of(ctx, request))

    def stop(request: gr.Request) -> tuple:
        shown = handlers.finetune.stop(session_key(request), request_lang(request))
        if shown is None:
            return gr.skip(), text("corrections.nothing_running", request_lang(request)), gr.skip()
        return shown.run_id, text("corrections.stopped", request_lang(request), run=shown.run_id), gr.skip()

    sources = [downloads, *(columns or ()), *([model] if model is not None else [])]
    outputs = [panel.box, panel.note, panel.table, panel.result, panel.model, panel.text_col, panel.label_col]
    fill = fill_batch if columns is not None else fill_evaluation
    filled = downloads.change(panel.errors.guard(fill), sources, outputs, api_visibility="private",
                              show_progress="hidden")
    public = {"api_name": api_name} if api_name else {"api_visibility": "private"}
    event = panel.retrain.click(panel.errors.guard(corrections), panel.inputs, panel.outputs, **public,
                                concurrency_id=TRAINING, concurrency_limit=TRAINING_STREAMS)
    stopped = panel.stop.click(panel.errors.guard(stop), None, panel.outputs, cancels=[event],
                               api_visibility="private", concurrency_limit=None)
    panel.errors.watch(filled, event, stopped)
