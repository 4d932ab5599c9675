"""The Fine-tune tab's live probes (entered before Start, answered at every evaluation) and the domain-adaptation
option (also train the embeddings). Layout and wiring only; the handlers are
:class:`components.finetune_probes_handlers.ProbeHandlers`.

Use in the tab: ``probes = probes_inputs()`` before the Start button, ``table = probes_table()`` beside the results,
``event = extend_spec(probes, event, spec_box, errors)`` on the form's collect event (the ``finetune`` request's spec
then carries the probes), and ``wire_probes(ctx, probes, table, progress, run_pick)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from components.common import ErrorLine
from components.finetune_probes_handlers import ProbeHandlers
from components.i18n import request_lang, t
from pipelines.context import AppContext
from pipelines.sessions import session_key


@dataclass
class ProbeInputs:
    box: gr.Textbox
    embeddings: gr.Checkbox


def probes_inputs() -> ProbeInputs:
    """The probes textbox (one per line) and the domain option, in an accordion (inside the current Blocks)."""
    with gr.Accordion(t("probes.title"), open=False, elem_id="ft-probes-inputs"):
        box = gr.Textbox(label=t("probes.input"), info=t("probes.info"), lines=3, max_lines=5,
                         elem_id="ft-probes")
        embeddings = gr.Checkbox(False, label=t("probes.train_embeddings"), info=t("probes.train_embeddings_info"),
                                 elem_id="ft-train-embeddings")
    return ProbeInputs(box, embeddings)


def probes_table() -> gr.Dataframe:
    """The answers table: one row per probe per evaluation, the previous answer beside."""
    return gr.Dataframe(label=t("probes.table"), interactive=False, wrap=True, visible=False,
                        elem_id="ft-probe-table")


def extend_spec(inputs: ProbeInputs, event: Any, spec: gr.Textbox, errors: ErrorLine) -> Any:
    """After ``event`` (which wrote the spec JSON into ``spec``): add the probes; the new event to chain on."""
    merged = event.success(errors.guard(ProbeHandlers.merge), [spec, inputs.box, inputs.embeddings], spec,
                           api_visibility="private", show_progress="hidden")
    errors.watch(merged)
    return merged


def wire_probes(ctx: AppContext, table: gr.Dataframe, progress: gr.components.Component,
                run_pick: gr.components.Component) -> None:
    """The table follows the session's training (each progress update) and the picked run."""
    handlers = ProbeHandlers(ctx)

    def show(rows: list[list[Any]], headers: list[str]) -> gr.Dataframe:
        return gr.Dataframe(value=rows or None, headers=headers, visible=bool(rows))

    def live(request: gr.Request) -> gr.Dataframe:
        rows, headers = handlers.live(session_key(request), request_lang(request))
        return show(rows, headers) if rows else gr.skip()

    def picked(run: str | None, request: gr.Request) -> gr.Dataframe:
        from components.users import user_of

        return show(*handlers.of_run(run, request_lang(request), user_of(ctx, request)))

    progress.change(live, None, table, api_visibility="private", show_progress="hidden", concurrency_limit=None)
    run_pick.change(picked, run_pick, table, api_visibility="private", show_progress="hidden")
