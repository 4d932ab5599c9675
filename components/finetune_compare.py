"""The Fine-tune tab's "Compare runs" accordion: pick two to five runs, overlay their loss curves, list their
settings side by side with the differences highlighted. Layout and wiring only; the handlers are
:class:`components.finetune_compare_handlers.CompareHandlers`."""

from __future__ import annotations

import gradio as gr

from components.common import ErrorLine
from components.finetune_compare_handlers import CompareHandlers
from components.i18n import request_lang, t
from components.users import user_of
from pipelines.context import AppContext
from pipelines.training.compare import MAX_RUNS


def build_compare_panel(ctx: AppContext) -> dict[str, gr.components.Component]:
    """The accordion (inside the current Blocks context), wired; its components by name."""
    handlers = CompareHandlers(ctx)
    with gr.Accordion(t("compare_runs.title"), open=False, elem_id="ft-compare"):
        gr.Markdown(t("compare_runs.intro"))
        with gr.Row():
            picks = gr.Dropdown([], multiselect=True, max_choices=MAX_RUNS, label=t("compare_runs.pick"), scale=3,
                                elem_id="ft-compare-pick")
            button = gr.Button(t("compare_runs.compare"), variant="primary", scale=1, elem_id="ft-compare-btn")
        errors = ErrorLine(ctx, "ft-compare-errors")
        plot = gr.Plot(label=t("compare_runs.curves"), elem_id="ft-compare-plot")
        table = gr.HTML(elem_id="ft-compare-table")

    def refresh(chosen: list[str] | None, request: gr.Request) -> gr.Dropdown:
        options = handlers.choices(user_of(ctx, request))
        ids = {value for _, value in options}
        return gr.Dropdown(choices=options, value=[c for c in chosen or [] if c in ids])

    def show(chosen: list[str] | None, request: gr.Request) -> tuple:
        return handlers.show(chosen or [], request_lang(request), user_of(ctx, request))

    def compare_runs(run_ids: str, request: gr.Request) -> dict:
        """Compare 2 to 5 runs: ``run_ids`` comma-separated or a JSON list. Returns JSON: runs (metrics), loss
        curves (train per step, validation per evaluation) and settings side by side with ``differs`` marks."""
        return handlers.api(run_ids, user_of(ctx, request))

    picks.focus(refresh, picks, picks, queue=False, show_progress="hidden", api_visibility="private")
    shown = button.click(errors.guard(show), picks, [plot, table], api_visibility="private")
    errors.watch(shown)
    gr.api(compare_runs, api_name="compare_runs")
    return {"compare_pick": picks, "compare_button": button, "compare_plot": plot, "compare_table": table}
