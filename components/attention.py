"""Attention tab: bertviz head/model views, plotly heatmaps, rollout, model comparison, position embeddings, the
logit lens and attention over a generated answer.

Layout and event wiring only; :class:`~components.attention_handlers.AttentionHandlers` does the work with plain
values and :mod:`pipelines.attention` holds the task logic.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from components.attention_events import wire_api, wire_compare, wire_positions, wire_ranges, wire_run
from components.attention_handlers import AttentionHandlers
from components.attention_insight import generated_section, lens_tab, wire_generated, wire_lens, wire_lens_api
from components.attention_insight_handlers import AttentionInsightHandlers
from components.common import ErrorLine, examples, model_picker
from components.i18n import t
from pipelines.attention.extract import DEFAULT_MAX_TOKENS, HARD_MAX_TOKENS
from pipelines.attention.views import TOP_COLUMNS
from pipelines.context import AppContext

EXAMPLE = "The animal didn't cross the street because it was too tired."
# The server checks API callers' layer/head against these bounds, so they stay wide (every model fits); each
# session's sliders get the picked model's own range from its config.json on page load and when the model changes,
# and from the result after each run.
API_MAX_INDEX = 127
Components = dict[str, Any]


def _inputs(ctx: AppContext) -> Components:
    """Model, token cap, texts, the run button with its status line, and the examples."""
    gr.Markdown(t("attention.intro"))
    with gr.Row():
        model = model_picker(ctx, kinds=("any",), elem_id="attention-model")
        max_tokens = gr.Slider(8, HARD_MAX_TOKENS, value=DEFAULT_MAX_TOKENS, step=8, label=t("attention.max_tokens"))
    with gr.Row():
        # No max_length: a longer text is cut on the server, with a note saying so (ctx.limits.cut).
        text = gr.Textbox(value=EXAMPLE, lines=3, label=t("attention.text"), scale=3, elem_id="attention-text")
        text_pair = gr.Textbox(lines=3, label=t("attention.text_pair"), scale=2)
    run_btn = gr.Button(t("attention.run"), variant="primary", elem_id="attention-run")
    errors = ErrorLine(ctx, "attention-errors")
    text_examples = examples([[EXAMPLE, "", "minilm-l6"],
                              ["The cat sat on the mat.", "Where did the cat sit?", "minilm-l6"],
                              ["Once upon a time, a little robot", "", "smollm2-135m-instruct"]],
                             [text, text_pair, model])
    note = gr.Markdown(elem_id="attention-note")
    return {"model": model, "max_tokens": max_tokens, "text": text, "text_pair": text_pair, "run": run_btn,
            "errors": errors, "examples": text_examples, "note": note}


def _selectors() -> Components:
    """Layer and head sliders and the token picker for the detailed views."""
    with gr.Row():
        layer = gr.Slider(0, API_MAX_INDEX, value=0, step=1, label=t("attention.layer"), elem_id="attention-layer")
        head = gr.Slider(-1, API_MAX_INDEX, value=0, step=1, label=t("attention.head"), elem_id="attention-head")
        token = gr.Dropdown(choices=[], value=None, label=t("attention.token"), elem_id="attention-token")
    return {"layer": layer, "head": head, "token": token, "result": gr.State(None)}


def _view_tabs() -> Components:
    """The bertviz views and the plotly heatmaps."""
    with gr.Tab(t("attention.head_view"), id="head-view"):
        head_html = gr.HTML(elem_id="attention-head-view")
    with gr.Tab(t("attention.model_view"), id="model-view"):
        model_html = gr.HTML(elem_id="attention-model-view")
    with gr.Tab(t("attention.heatmaps"), id="heatmaps"):
        head_plot = gr.Plot(elem_id="attention-heatmap", show_label=False)
        token_plot = gr.Plot(elem_id="attention-token-bars", show_label=False)
        with gr.Row():
            mean_plot = gr.Plot(elem_id="attention-mean", show_label=False)
            rollout_plot = gr.Plot(elem_id="attention-rollout", show_label=False)
        grid_plot = gr.Plot(elem_id="attention-grid", show_label=False)
    return {"head_view": head_html, "model_view": model_html, "heatmap": head_plot, "mean": mean_plot,
            "grid": grid_plot, "rollout": rollout_plot, "token_bars": token_plot}


def _compare_tab(ctx: AppContext) -> Components:
    with gr.Tab(t("attention.compare"), id="compare"):
        gr.Markdown(t("attention.compare_intro"))
        with gr.Row():
            model_b = model_picker(ctx, kinds=("any",), label_key="attention.model_b", elem_id="attention-model-b")
            compare_btn = gr.Button(t("attention.run_compare"), variant="primary", elem_id="attention-compare")
        compare_errors = ErrorLine(ctx, "attention-compare-errors")
        compare_note = gr.Markdown(elem_id="attention-compare-note")
        diff_plot = gr.Plot(elem_id="attention-diff", show_label=False)
        # English machine names until the page's load event sets them in the page's language
        top_table = gr.Dataframe(headers=list(TOP_COLUMNS), label=t("attention.top_heads"), interactive=False,
                                 elem_id="attention-top-heads")
        diff_grid = gr.Plot(elem_id="attention-diff-grid", show_label=False)
    return {"model_b": model_b, "compare": compare_btn, "compare_errors": compare_errors,
            "compare_note": compare_note, "diff": diff_plot, "top_heads": top_table, "diff_grid": diff_grid}


def _positions_tab(ctx: AppContext) -> Components:
    with gr.Tab(t("attention.positions"), id="positions"):
        gr.Markdown(t("attention.positions_intro"))
        pos_btn = gr.Button(t("attention.show_positions"), elem_id="attention-show-positions")
        pos_errors = ErrorLine(ctx, "attention-positions-errors")
        pos_note = gr.Markdown(elem_id="attention-positions-note")
        pos_plot = gr.Plot(elem_id="attention-positions", show_label=False)
    return {"positions": pos_btn, "positions_errors": pos_errors, "positions_note": pos_note,
            "positions_plot": pos_plot}


def build_attention_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Attention tab inside the current Blocks context."""
    handlers, insight = AttentionHandlers(ctx), AttentionInsightHandlers(ctx)
    ui = {**_inputs(ctx), **generated_section(ctx), **_selectors()}
    with gr.Tabs():
        ui.update(_view_tabs())
        ui.update(lens_tab(ctx))
        ui.update(_compare_tab(ctx))
        ui.update(_positions_tab(ctx))
    wire_run(handlers, ui)
    wire_ranges(handlers, ui)
    wire_compare(handlers, ui)
    wire_positions(handlers, ui)
    wire_generated(handlers, insight, ui)
    wire_lens(insight, ui)
    wire_api(handlers)
    wire_lens_api(insight)
    lines = {name: ui[name].box for name in ("errors", "compare_errors", "positions_errors", "gen_errors",
                                             "lens_errors")}
    return {**{name: value for name, value in ui.items() if isinstance(value, gr.components.Component)}, **lines}
