"""Attention tab: bertviz head/model views, plotly heatmaps, rollout, model comparison and position embeddings."""

from __future__ import annotations

import os
from typing import Any

import gradio as gr

from components.common import examples, model_picker, progress_reporter, run_example, ui_errors
from components.i18n import t
from pipelines.attention import (
    DEFAULT_MAX_TOKENS,
    HARD_MAX_TOKENS,
    AttentionInput,
    AttentionResult,
    BertvizOptions,
    Selection,
    attention_json,
    build_views,
    compare,
    extract,
    figures,
    head_view_html,
    iframe,
    load_for_attention,
    plot_views,
    position_table,
)
from pipelines.attention.bertviz_html import VENDOR_DIR
from pipelines.attention.views import compare_figures, notes_markdown
from pipelines.context import HEAVY, AppContext

EXAMPLE = "The animal didn't cross the street because it was too tired."
MAX_INDEX = 127  # layer/head sliders before the first run
TOP_COLUMNS = ["layer", "head", "mean_tv_distance", "max_abs_diff"]
# bertviz's require.js/d3/jQuery come from assets/vendor, never a CDN. By default they are inlined into each view's
# srcdoc (robust: the sandboxed iframe has an opaque origin, and it works behind any proxy or root path; costs
# ~340 KB per view). LMW_BERTVIZ_JS=served makes the iframe load them from the app (allowed_paths=[assets]) instead.
SERVED_VENDOR = f"gradio_api/file={VENDOR_DIR}"
BERTVIZ = BertvizOptions(vendor_base=SERVED_VENDOR if os.environ.get("LMW_BERTVIZ_JS") == "served" else None)


def _plots(result: AttentionResult, layer: int, head: int, token: Any) -> tuple:
    views = plot_views(result, Selection(int(layer), int(head), int(token or 0)))
    return views.head, views.mean, views.grid, views.rollout, views.token


def build_attention_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Attention tab inside the current Blocks context."""
    gr.Markdown(t("attention.intro"))
    with gr.Row():
        model = model_picker(ctx, kinds=("any",))
        max_tokens = gr.Slider(8, HARD_MAX_TOKENS, value=DEFAULT_MAX_TOKENS, step=8, label=t("attention.max_tokens"))
    with gr.Row():
        text = gr.Textbox(value=EXAMPLE, lines=3, max_length=20_000, label=t("attention.text"), scale=3)
        text_pair = gr.Textbox(lines=3, label=t("attention.text_pair"), scale=2)
    run_btn = gr.Button(t("attention.run"), variant="primary", elem_id="attention-run")
    text_examples = examples([[EXAMPLE, "", "minilm-l6"],
                              ["The cat sat on the mat.", "Where did the cat sit?", "minilm-l6"],
                              ["Once upon a time, a little robot", "", "smollm2-135m-instruct"]],
                             [text, text_pair, model])
    note = gr.Markdown(elem_id="attention-note")
    with gr.Row():
        # Wide ranges until a model is run (API callers are checked against these); then the model's own.
        layer = gr.Slider(0, MAX_INDEX, value=0, step=1, label=t("attention.layer"))
        head = gr.Slider(-1, MAX_INDEX, value=0, step=1, label=t("attention.head"))
        token = gr.Dropdown(choices=[], value=None, label=t("attention.token"))
    result_state = gr.State(None)
    with gr.Tabs():
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
        with gr.Tab(t("attention.compare"), id="compare"):
            gr.Markdown(t("attention.compare_intro"))
            with gr.Row():
                model_b = model_picker(ctx, kinds=("any",), label_key="attention.model_b")
                compare_btn = gr.Button(t("attention.run_compare"), variant="primary")
            compare_note = gr.Markdown(elem_id="attention-compare-note")
            diff_plot = gr.Plot(elem_id="attention-diff", show_label=False)
            top_table = gr.Dataframe(headers=TOP_COLUMNS, label=t("attention.top_heads"), interactive=False)
            diff_grid = gr.Plot(elem_id="attention-diff-grid", show_label=False)
        with gr.Tab(t("attention.positions"), id="positions"):
            gr.Markdown(t("attention.positions_intro"))
            pos_btn = gr.Button(t("attention.show_positions"))
            pos_note = gr.Markdown(elem_id="attention-positions-note")
            pos_plot = gr.Plot(elem_id="attention-positions", show_label=False)

    def _extract(ref: str, words: str, pair: str, cap: float, progress: gr.Progress | None) -> AttentionResult:
        request = AttentionInput(words, pair or "", int(cap or DEFAULT_MAX_TOKENS))
        return extract(ctx.manager, ref, request, progress_reporter(progress))

    @ui_errors
    def run(ref: str, words: str, pair: str, cap: float, layer_i: float, head_i: float,
            progress: gr.Progress = gr.Progress()) -> tuple:
        result = _extract(ref, words, pair, cap, progress)
        sel = Selection(int(layer_i or 0), int(head_i or 0), 0).clamp(result)
        views = build_views(result, sel, BERTVIZ)
        choices = [(label, i) for i, label in enumerate(result.labels)]
        return (
            result, notes_markdown(result, views.notes),
            iframe(views.head_view), iframe(views.model_view),
            views.plots.head, views.plots.mean, views.plots.grid, views.plots.rollout, views.plots.token,
            gr.Slider(maximum=result.num_layers - 1, value=sel.layer),
            gr.Slider(maximum=result.num_heads - 1, value=sel.head),
            gr.Dropdown(choices=choices, value=sel.token),
        )

    @ui_errors
    def reselect(result: AttentionResult | None, layer_i: float, head_i: float, token_i: Any) -> tuple:
        if result is None:
            raise gr.Error("Click 'Show attention' first.")
        return _plots(result, layer_i, head_i, token_i)

    @ui_errors
    def relayer(result: AttentionResult | None, layer_i: float, head_i: float, token_i: Any) -> tuple:
        plots = reselect(result, layer_i, head_i, token_i)
        return (iframe(head_view_html(result, int(layer_i), BERTVIZ)), *plots)

    @ui_errors
    def run_compare(ref_a: str, ref_b: str, words: str, pair: str, cap: float, layer_i: float, head_i: float,
                    progress: gr.Progress = gr.Progress()) -> tuple:
        first = _extract(ref_a, words, pair, cap, progress)
        second = _extract(ref_b, words, pair, cap, progress)
        comparison = compare(first, second)
        figs = compare_figures(comparison, first.labels, int(layer_i or 0), max(int(head_i or 0), 0))
        summary = (
            f"**{ref_b}** minus **{ref_a}** on {first.num_tokens} tokens: largest change in one weight "
            f"{figs['max_abs']:.4f}." + "".join(f"\n- {n}" for n in first.notes)
        )
        rows = [[row[c] for c in TOP_COLUMNS] for row in figs["top"]]
        return summary, figs["head"], rows, figs["grid"]

    @ui_errors
    def show_positions(ref: str, progress: gr.Progress = gr.Progress()) -> tuple:
        loaded = load_for_attention(ctx.manager, ref, progress_reporter(progress))
        if loaded.tokenizer is None:
            raise gr.Error("spaCy pipelines have no position embeddings; pick a transformers model.")
        table = position_table(loaded.model)
        return table.description, figures.positions(table)

    def attention(
        model: str, text: str, text_pair: str = "", layer: int = -1, head: int = -1,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> dict:
        """Attention weights as JSON: tokens, num_layers, num_heads and the weights of one layer/head.

        layer and head are 0-based; -1 means all of them. ``weights`` is nested lists whose dimensions are
        named in ``weights_shape`` (e.g. ["head", "query", "key"] for one layer). Inputs longer than
        max_tokens (default 256, at most 512) are cut; ``notes`` says how many tokens were kept. At most
        6,000,000 weights are returned at once: for big models ask for one layer.
        """
        result = extract(ctx.manager, model, AttentionInput(text, text_pair or "", max_tokens))
        return attention_json(result, layer, head)

    plots_out = [head_plot, mean_plot, grid_plot, rollout_plot, token_plot]
    run_btn.click(
        run, [model, text, text_pair, max_tokens, layer, head],
        [result_state, note, head_html, model_html, *plots_out, layer, head, token],
        api_name="attention_views", concurrency_id=HEAVY,
    )
    run_example(text_examples, run, [model, text, text_pair, max_tokens, layer, head],
                [result_state, note, head_html, model_html, *plots_out, layer, head, token], concurrency_id=HEAVY)
    layer.release(relayer, [result_state, layer, head, token], [head_html, *plots_out], api_visibility="private")
    head.release(reselect, [result_state, layer, head, token], plots_out, api_visibility="private")
    token.input(reselect, [result_state, layer, head, token], plots_out, api_visibility="private")
    compare_btn.click(
        run_compare, [model, model_b, text, text_pair, max_tokens, layer, head],
        [compare_note, diff_plot, top_table, diff_grid], api_name="attention_compare", concurrency_id=HEAVY,
    )
    pos_btn.click(show_positions, [model], [pos_note, pos_plot], api_name="position_embeddings",
                  concurrency_id=HEAVY)
    gr.api(ui_errors(attention), api_name="attention", concurrency_id=HEAVY)
    return {
        "model": model, "text": text, "text_pair": text_pair, "max_tokens": max_tokens, "run": run_btn,
        "note": note, "layer": layer, "head": head, "token": token, "head_view": head_html,
        "model_view": model_html, "heatmap": head_plot, "mean": mean_plot, "grid": grid_plot,
        "rollout": rollout_plot, "token_bars": token_plot, "model_b": model_b, "compare": compare_btn,
        "compare_note": compare_note, "diff": diff_plot, "top_heads": top_table, "diff_grid": diff_grid,
        "positions": pos_btn, "positions_note": pos_note, "positions_plot": pos_plot,
    }
