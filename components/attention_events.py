"""Event wiring of the Attention tab: Gradio-facing wrappers that call :class:`AttentionHandlers`.

Each wrapper keeps the parameter names of the documented endpoints (``/attention_views``, ``/attention_compare``,
``/position_embeddings``, ``/attention``) and turns the handlers' plain values into Gradio updates.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import gradio as gr

from components.attention_handlers import AttentionHandlers, RunView
from components.attention_insight_handlers import exportable_plots
from components.common import ErrorLine, progress_reporter, run_example, ui_errors
from components.i18n import request_lang
from pipelines.attention.extract import DEFAULT_MAX_TOKENS
from pipelines.attention.shape import ModelShape
from pipelines.context import HEAVY
from pipelines.insight.export import exportable
from pipelines.tasks.microbatch import BATCHED

PRIVATE = MappingProxyType({"queue": False, "show_progress": "hidden", "api_visibility": "private"})
# "Show attention" and /attention: two requests may be in progress at once, so that concurrent short texts share
# one forward pass (ctx.batcher); not more, since each run at 512 tokens holds a few hundred MB of weights.
TOGETHER = MappingProxyType({"concurrency_id": f"{BATCHED}-attention", "concurrency_limit": 2})
PLOTS = ("heatmap", "mean", "grid", "rollout", "token_bars")  # PlotViews.as_tuple() order
Components = dict[str, Any]


def _sliders(shape: ModelShape, layer: Any, head: Any) -> tuple[gr.Slider, gr.Slider]:
    """Layer and head sliders limited to ``shape``, their values kept when they fit."""
    layer_i = min(max(int(layer or 0), 0), shape.layers - 1)
    head_i = min(max(int(head if head is not None else 0), -1), shape.heads - 1)
    return gr.Slider(maximum=shape.layers - 1, value=layer_i), gr.Slider(maximum=shape.heads - 1, value=head_i)


def run_outputs(view: RunView) -> tuple:
    """A run's values for :func:`run_targets` (plots with a named PNG download and any prompt/answer boundary).

    The page's state gets the view's small ticket; the weights stay in the server's bounded cache (ctx.results)."""
    layer, head = _sliders(view.shape, view.selection.layer, view.selection.head)
    kept = view.ticket if view.ticket is not None else view.result
    return (kept, view.note, view.head_html, view.model_html, *exportable_plots(view.plots, view.result),
            layer, head, gr.Dropdown(choices=view.token_choices, value=view.selection.token))


def run_targets(ui: Components) -> list[Any]:
    """The components a run fills: result, note, bertviz views, plots, sliders and token picker."""
    return [ui["result"], ui["note"], ui["head_view"], ui["model_view"], *[ui[name] for name in PLOTS], ui["layer"],
            ui["head"], ui["token"]]


def wire_run(handlers: AttentionHandlers, ui: Components) -> None:
    """Show attention (button and examples), and the cheap re-selection of layer, head and token."""
    errors: ErrorLine = ui["errors"]

    def run(ref: str, words: str, pair: str, cap: float, layer_i: float, head_i: float,
            progress: gr.Progress = gr.Progress()) -> tuple:
        view = handlers.run(ref, words, pair, cap, layer_i, head_i, request_lang(), progress_reporter(progress))
        return run_outputs(view)

    def reselect(kept: Any, layer_i: float, head_i: float, token_i: Any) -> tuple:
        result = handlers.resolve(kept)  # from the server's cache, or recomputed when it was dropped
        return exportable_plots(handlers.reselect(result, layer_i, head_i, token_i, request_lang()), result)

    def relayer(kept: Any, layer_i: float, head_i: float, token_i: Any) -> tuple:
        result = handlers.resolve(kept)
        html, plots = handlers.relayer(result, layer_i, head_i, token_i, request_lang())
        return (html, *exportable_plots(plots, result))

    plots = [ui[name] for name in PLOTS]
    inputs = [ui["model"], ui["text"], ui["text_pair"], ui["max_tokens"], ui["layer"], ui["head"]]
    outputs = run_targets(ui)
    picked = [ui["result"], ui["layer"], ui["head"], ui["token"]]
    guarded = errors.guard(run)
    errors.watch(
        ui["run"].click(guarded, inputs, outputs, api_name="attention_views", **TOGETHER),
        run_example(ui["examples"], guarded, inputs, outputs, **TOGETHER),
        ui["layer"].release(errors.guard(relayer), picked, [ui["head_view"], *plots], api_visibility="private"),
        ui["head"].release(errors.guard(reselect), picked, plots, api_visibility="private"),
        ui["token"].input(errors.guard(reselect), picked, plots, api_visibility="private"),
    )


def wire_ranges(handlers: AttentionHandlers, ui: Components) -> None:
    """Give the sliders the picked model's range from its config.json (no weights loaded): on page load and
    whenever the model changes. Unknown shapes (e.g. a Hub id not downloaded yet) leave them as they are."""

    def ranges(ref: str, layer_i: float, head_i: float) -> tuple:
        shape = handlers.shape(ref)
        return (gr.skip(), gr.skip()) if shape is None else _sliders(shape, layer_i, head_i)

    args = ([ui["model"], ui["layer"], ui["head"]], [ui["layer"], ui["head"]])
    root = gr.context.Context.root_block
    if root is not None:
        root.load(ranges, *args, **PRIVATE)
    ui["model"].input(ranges, *args, **PRIVATE)


def wire_compare(handlers: AttentionHandlers, ui: Components) -> None:
    """Model B minus model A on the same text."""
    errors: ErrorLine = ui["compare_errors"]

    def run_compare(ref_a: str, ref_b: str, words: str, pair: str, cap: float, layer_i: float, head_i: float,
                    progress: gr.Progress = gr.Progress()) -> tuple:
        view = handlers.compare(ref_a, ref_b, words, pair, cap, layer_i, head_i, request_lang(),
                                progress_reporter(progress))
        table = {"headers": view.headers, "data": view.rows}
        return (view.summary, exportable(view.head, "attention-compare-head"), table,
                exportable(view.grid, "attention-compare-grid"))

    def empty_table() -> dict:
        """The table's headers in the page's language (a Dataframe does not translate i18n headers itself)."""
        return {"headers": handlers.top_headers(request_lang()), "data": []}

    root = gr.context.Context.root_block
    if root is not None:
        root.load(empty_table, None, ui["top_heads"], **PRIVATE)
    inputs = [ui["model"], ui["model_b"], ui["text"], ui["text_pair"], ui["max_tokens"], ui["layer"], ui["head"]]
    outputs = [ui["compare_note"], ui["diff"], ui["top_heads"], ui["diff_grid"]]
    errors.watch(ui["compare"].click(errors.guard(run_compare), inputs, outputs, api_name="attention_compare",
                                     concurrency_id=HEAVY))


def wire_positions(handlers: AttentionHandlers, ui: Components) -> None:
    """The position encoding of the picked model."""
    errors: ErrorLine = ui["positions_errors"]

    def show_positions(ref: str, progress: gr.Progress = gr.Progress()) -> tuple:
        description, figure = handlers.positions(ref, request_lang(), progress_reporter(progress))
        return description, exportable(figure, "position-embeddings")

    event = ui["positions"].click(errors.guard(show_positions), [ui["model"]],
                                  [ui["positions_note"], ui["positions_plot"]], api_name="position_embeddings",
                                  concurrency_id=HEAVY)
    errors.watch(event)


def wire_api(handlers: AttentionHandlers) -> None:
    """The ``/attention`` endpoint (JSON only, no UI)."""

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
        return handlers.api_json(model, text, text_pair, layer, head, max_tokens, request_lang())

    gr.api(ui_errors(attention), api_name="attention", **TOGETHER)
