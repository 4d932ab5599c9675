"""The Attention tab's insight sections: the logit lens (a view tab) and "run on a generated answer" (an accordion
under the inputs whose result fills the tab's ordinary views). Layout and event wiring only; the work is done by
:class:`~components.attention_insight_handlers.AttentionInsightHandlers`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from components.attention_events import run_outputs, run_targets
from components.attention_handlers import AttentionHandlers
from components.attention_insight_handlers import AttentionInsightHandlers
from components.common import ErrorLine, progress_reporter, ui_errors
from components.i18n import request_lang, t
from components.insight_export import svg_export_script
from pipelines.context import HEAVY, AppContext
from pipelines.insight.common import DEFAULT_LENS_TOKENS, HARD_LENS_TOKENS
from pipelines.sessions import session_key

Components = dict[str, Any]


def generated_section(ctx: AppContext) -> Components:
    """Prompt and answer boxes, the button that takes them from Generate, and the run button."""
    with gr.Accordion(t("insight.generated.title"), open=False, elem_id="attention-generated"):
        gr.Markdown(t("insight.generated.intro"))
        with gr.Row():
            prompt = gr.Textbox(lines=3, label=t("insight.generated.prompt"), elem_id="attention-gen-prompt")
            answer = gr.Textbox(lines=3, label=t("insight.generated.answer"), elem_id="attention-gen-answer")
        with gr.Row():
            take = gr.Button(t("insight.generated.take"), elem_id="attention-gen-take")
            run = gr.Button(t("insight.generated.run"), variant="primary", elem_id="attention-gen-run")
        errors = ErrorLine(ctx, "attention-gen-errors")
    return {"gen_prompt": prompt, "gen_answer": answer, "gen_take": take, "gen_run": run, "gen_errors": errors}


def lens_tab(ctx: AppContext) -> Components:
    """The logit-lens view: its own token cap, the compare switch, the note and three figures."""
    with gr.Tab(t("insight.lens.tab"), id="logit-lens"):
        gr.Markdown(t("insight.lens.intro"))
        with gr.Row():
            cap = gr.Slider(1, HARD_LENS_TOKENS, value=DEFAULT_LENS_TOKENS, step=1, label=t("insight.lens.max_tokens"))
            compare = gr.Checkbox(False, label=t("insight.lens.compare"), elem_id="lens-compare")
            run = gr.Button(t("insight.lens.run"), variant="primary", elem_id="lens-run")
        errors = ErrorLine(ctx, "lens-errors")
        note = gr.Markdown(elem_id="lens-note")
        heatmap = gr.Plot(elem_id="lens-heatmap", show_label=False)
        ranks = gr.Plot(elem_id="lens-ranks", show_label=False)
        compared = gr.Plot(elem_id="lens-compare-plot", show_label=False, visible=False)
        svg_export_script()  # every exportable plot of the page gets an SVG button beside plotly's PNG one
    return {"lens_cap": cap, "lens_compare": compare, "lens_run": run, "lens_errors": errors, "lens_note": note,
            "lens_heatmap": heatmap, "lens_ranks": ranks, "lens_compared": compared}


def wire_lens(insight: AttentionInsightHandlers, ui: Components) -> None:
    """Show the logit lens of the tab's model and text."""
    errors: ErrorLine = ui["lens_errors"]

    def show_lens(ref: str, text: str, cap: float, compare: bool, progress: gr.Progress = gr.Progress()) -> tuple:
        view = insight.lens(ref, text, cap, bool(compare), request_lang(), progress_reporter(progress))
        return view.note, view.heatmap, view.ranks, gr.Plot(value=view.compare, visible=view.compare is not None)

    inputs = [ui["model"], ui["text"], ui["lens_cap"], ui["lens_compare"]]
    outputs = [ui["lens_note"], ui["lens_heatmap"], ui["lens_ranks"], ui["lens_compared"]]
    errors.watch(ui["lens_run"].click(errors.guard(show_lens), inputs, outputs, api_visibility="private",
                                      concurrency_id=HEAVY))


def wire_generated(handlers: AttentionHandlers, insight: AttentionInsightHandlers, ui: Components) -> None:
    """Take the session's last exchange from Generate, and show attention over prompt + answer."""
    errors: ErrorLine = ui["gen_errors"]

    def take(ref: str, request: gr.Request) -> tuple:
        exchange = insight.last_exchange(session_key(request))
        return exchange.read_prompt, exchange.answer, exchange.model or ref

    def run(ref: str, prompt: str, answer: str, cap: float, layer_i: float, head_i: float,
            progress: gr.Progress = gr.Progress()) -> tuple:
        return run_outputs(handlers.run_generated(ref, prompt, answer, cap, layer_i, head_i, request_lang(),
                                                  progress_reporter(progress)))  # a cache miss recomputes

    boxes = [ui["gen_prompt"], ui["gen_answer"], ui["model"]]
    inputs = [ui["model"], ui["gen_prompt"], ui["gen_answer"], ui["max_tokens"], ui["layer"], ui["head"]]
    guarded = errors.guard(run)
    taken = ui["gen_take"].click(errors.guard(take), [ui["model"]], boxes, api_visibility="private", queue=False)
    errors.watch(
        taken,
        taken.success(guarded, inputs, run_targets(ui), api_visibility="private", concurrency_id=HEAVY),
        ui["gen_run"].click(guarded, inputs, run_targets(ui), api_visibility="private", concurrency_id=HEAVY),
    )


def wire_lens_api(insight: AttentionInsightHandlers) -> None:
    """The ``/logit_lens`` endpoint (JSON only, no UI)."""

    def logit_lens(text: str, model: str, max_tokens: int = DEFAULT_LENS_TOKENS) -> dict:
        """The logit lens of a causal LM as JSON: for each input position, the top next token decoded from every
        layer (row 0: the embeddings) through the final norm and the LM head, its probability, and the rank of
        the model's final answer at each layer. Matrices are nested lists of shape [layer][position]. Inputs
        longer than max_tokens (default 64, at most 256) are cut; ``notes`` says so."""
        return insight.lens_json(text, model, max_tokens, request_lang())

    gr.api(ui_errors(logit_lens), api_name="logit_lens", concurrency_id=HEAVY)
