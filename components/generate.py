"""Generate tab: streaming chat and completion with a token view, next-token explorer and model comparison.

Layout and event wiring only: the handlers are :class:`components.generate_handlers.GenerateHandlers` (plain
values), their Gradio adapters :class:`components.generate_events.GenerateEvents`. Public API (stable, usable from
gradio_client): ``/generate``, ``/generate_stream``, ``/generate_details`` and ``/next_tokens``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import gradio as gr

from components.backends_picker import generation_picker
from components.common import ErrorLine, examples, run_example
from components.generate_events import GenerateEvents, register_api
from components.generate_handlers import KNOB_NAMES, SAME, GenerateHandlers
from components.generate_inspect import inspect_panel, wire_inspect, wire_inspect_api
from components.i18n import t
from pipelines.context import GENERATION, HEAVY, AppContext, generation_limit
from pipelines.generation import DEFAULT_SYSTEM
from pipelines.generation.engines import ENGINES, Engine
from pipelines.generation.presets import PRESETS
from pipelines.generation.settings import MAX_NEW_TOKENS_CAP, MODES, PRECISIONS, Mode, mode_defaults

KINDS = ("causal-lm",)
EXAMPLES = (("Write a haiku about the sea.",), ("Explain in two sentences what a language model is.",),
            ("用一句话介绍你自己。",))
PRIVATE = MappingProxyType({"queue": False, "api_visibility": "private"})


def _precision_choices(same: bool = False) -> list[tuple[Any, str]]:
    choices = [(t("generate.precision.auto") if p == "auto" else p, p) for p in PRECISIONS]
    return [(t("generate.same_as_a"), SAME), *choices] if same else choices


def _engine_choices(same: bool = False) -> list[tuple[Any, str]]:
    choices = [(t("generate.engine.auto") if e == Engine.AUTO else e, e) for e in ENGINES]
    return [(t("generate.same_as_a"), SAME), *choices] if same else choices


def _model_row(ctx: AppContext, c: dict[str, Any]) -> None:
    with gr.Row():
        c["picker"] = generation_picker(ctx, KINDS, ctx.config.chat_model, elem_id="generate-model")
        c["engine"] = gr.Dropdown(_engine_choices(), value=Engine.AUTO.value, label=t("generate.engine"),
                                  info=t("generate.engine_info"), elem_id="generate-engine")
        c["precision"] = gr.Dropdown(_precision_choices(), value="auto", label=t("generate.precision"),
                                     info=t("generate.precision_info"))
        c["mode"] = gr.Radio([(t(f"generate.mode.{m}"), m) for m in MODES], value="auto", label=t("generate.mode"),
                             info=t("generate.mode_info"))


def _chat_column(ctx: AppContext, c: dict[str, Any]) -> None:
    c["chatbot"] = gr.Chatbot(label=t("generate.chat"), height=300, elem_id="generate-chat")
    c["prompt"] = gr.Textbox(label=t("generate.prompt"), lines=3, placeholder=t("generate.prompt_placeholder"),
                             elem_id="generate-prompt", max_length=ctx.limits.max_prompt_chars)
    with gr.Row():
        c["run"] = gr.Button(t("generate.run"), variant="primary", elem_id="generate-run")
        c["stop"] = gr.Button(t("generate.stop"), variant="stop", elem_id="generate-stop")
        c["regenerate"] = gr.Button(t("generate.regenerate"), elem_id="generate-regenerate")
        c["clear"] = gr.Button(t("generate.clear"), elem_id="generate-clear")
    c["errors"] = ErrorLine(ctx, "generate-errors")
    with gr.Row():
        c["preset"] = gr.Dropdown([(t(f"generate.preset.{k}"), k) for k in PRESETS], value="story",
                                  label=t("generate.preset"), scale=3)
        c["apply_preset"] = gr.Button(t("generate.apply_preset"), scale=1, elem_id="generate-apply-preset")
    c["preset_info"] = gr.Markdown(t("generate.preset_desc.story"), elem_id="generate-preset-info")
    c["output"] = gr.Textbox(label=t("generate.answer"), lines=6, interactive=False, elem_id="generate-output",
                             visible=False)
    c["examples"] = examples([list(row) for row in EXAMPLES], [c["prompt"]])
    gr.Markdown(t("generate.examples_note"), elem_id="generate-examples-note")


def _settings_accordion(c: dict[str, Any]) -> None:
    chat = mode_defaults(Mode.CHAT)
    with gr.Accordion(t("generate.settings"), open=False):
        c["system"] = gr.Textbox(DEFAULT_SYSTEM, label=t("generate.system"), lines=2)
        with gr.Row():
            c["max_new"] = gr.Slider(1, MAX_NEW_TOKENS_CAP, value=128, step=1, label=t("generate.max_new_tokens"),
                                     info=t("generate.max_new_tokens_info"))
            c["sample"] = gr.Checkbox(chat.do_sample, label=t("generate.sample"), info=t("generate.sample_info"))
            c["seed"] = gr.Number(0, precision=0, label=t("generate.seed"), info=t("generate.seed_info"))
        with gr.Row():
            c["temperature"] = gr.Slider(0.05, 2.0, value=chat.temperature, step=0.05, label=t("generate.temperature"))
            c["top_p"] = gr.Slider(0.05, 1.0, value=chat.top_p, step=0.01, label=t("generate.top_p"))
            c["top_k"] = gr.Slider(0, 200, value=chat.top_k, step=1, label=t("generate.top_k"))
            c["rep"] = gr.Slider(1.0, 2.0, value=chat.repetition_penalty, step=0.01,
                                 label=t("generate.repetition_penalty"))
        gr.Markdown(t("generate.defaults_info"))
        c["stop_strings"] = gr.Textbox(label=t("generate.stop_strings"), info=t("generate.stop_strings_info"),
                                       lines=2)


def _explorer_and_compare(ctx: AppContext, c: dict[str, Any]) -> None:
    with gr.Accordion(t("generate.explorer"), open=False):
        gr.Markdown(t("generate.explorer_info"))
        c["explore"] = gr.Button(t("generate.explore"), elem_id="generate-explore")
        c["explore_errors"] = ErrorLine(ctx, "generate-explore-errors")
        c["plot"] = gr.Plot(label=t("generate.next_tokens"), elem_id="generate-plot")
    with gr.Accordion(t("generate.compare"), open=False):
        gr.Markdown(t("generate.compare_info"))
        with gr.Row():
            c["picker_b"] = generation_picker(ctx, KINDS, ctx.config.chat_model, label_key="generate.model_b")
            c["engine_b"] = gr.Dropdown(_engine_choices(same=True), value=SAME, label=t("generate.engine_b"))
            c["precision_b"] = gr.Dropdown(_precision_choices(same=True), value=SAME, label=t("generate.precision_b"))
            c["sampling_b"] = gr.Radio([(t(f"generate.sampling_b.{v}"), v) for v in (SAME, "greedy", "sample")],
                                       value=SAME, label=t("generate.sampling_b"))
            c["temperature_b"] = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label=t("generate.temperature_b"))
        c["compare"] = gr.Button(t("generate.run_compare"), elem_id="generate-compare")
        c["compare_errors"] = ErrorLine(ctx, "generate-compare-errors")
        with gr.Row():
            for side in ("a", "b"):
                with gr.Column():
                    c[f"out_{side}"] = gr.Textbox(label=t(f"generate.model_{side}_answer"), lines=6,
                                                  interactive=False, elem_id=f"generate-out-{side}")
                    c[f"tokens_{side}"] = gr.HTML()
                    c[f"stats_{side}"] = gr.JSON(label=t("generate.stats"))


def _wire(c: dict[str, Any], ev: GenerateEvents, limit: int) -> None:
    errors, private = c["errors"], {"concurrency_id": HEAVY, "api_visibility": "private"}
    together = {"concurrency_id": GENERATION, "concurrency_limit": limit}  # generations share decoding steps
    run_opts = {"api_visibility": "private", **together}
    chat_outputs = [c["chatbot"], c["history"], c["output"], c["tokens"], c["stats"], c["prompt"]]
    knobs = {c[k] for k in KNOB_NAMES} | {c["touched"], c["picker"], c["prompt"], c["system"]}
    chat_inputs = knobs | {c["history"]}
    runs = [c["run"].click(errors.guard(ev.generate), chat_inputs, chat_outputs, **run_opts),
            c["prompt"].submit(errors.guard(ev.generate), chat_inputs, chat_outputs, **run_opts),
            c["regenerate"].click(errors.guard(ev.regenerate), chat_inputs, chat_outputs, **run_opts),
            run_example(c["examples"], errors.guard(ev.generate), chat_inputs, chat_outputs, **together)]
    compare_inputs = knobs | {c["picker_b"], c["engine_b"], c["precision_b"], c["sampling_b"], c["temperature_b"]}
    compare = c["compare"].click(c["compare_errors"].guard(ev.compare), compare_inputs,
                                 [c[k] for k in ("out_a", "tokens_a", "stats_a", "out_b", "tokens_b", "stats_b")],
                                 **run_opts)
    c["stop"].click(ev.stop, None, [c["tokens"], c["stats"]], cancels=[*runs, compare], **PRIVATE)
    c["clear"].click(ev.clear, None, [c["chatbot"], c["history"], c["output"], c["tokens"], c["stats"]], **PRIVATE)
    explore = c["explore"].click(c["explore_errors"].guard(ev.explore), knobs, c["plot"], **private)
    sampling = [c["sample"], c["temperature"], c["top_p"], c["top_k"], c["rep"]]
    preset = c["apply_preset"].click(errors.guard(ev.preset), [c["preset"], c["prompt"]],
                                     [c["prompt"], c["system"], c["max_new"], c["sample"], c["temperature"],
                                      c["top_p"], c["rep"], c["touched"]], **PRIVATE)
    for knob in sampling:
        knob.input(lambda: True, None, c["touched"], **PRIVATE)
    c["mode"].change(ev.mode_changed, [c["mode"], c["touched"]], [*sampling, c["output"]], **PRIVATE)
    c["preset"].change(ev.preset_info, c["preset"], c["preset_info"], **PRIVATE)
    errors.watch(*runs, preset)
    c["compare_errors"].watch(compare)
    c["explore_errors"].watch(explore)


def build_generate_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Generate tab inside the current Blocks context."""
    service = ctx.generation
    register_api(ctx, service)  # first, so the stable names are never taken by a UI event
    wire_inspect_api(ctx)
    c: dict[str, Any] = {}
    gr.Markdown(t("generate.intro"))
    _model_row(ctx, c)
    with gr.Row():
        with gr.Column(scale=3):
            _chat_column(ctx, c)
        with gr.Column(scale=2):
            c["tokens"] = gr.HTML(label=t("generate.tokens"), elem_id="generate-tokens")
            c["stats"] = gr.JSON(label=t("generate.stats"), elem_id="generate-stats")
    inspect = inspect_panel(ctx)  # "Why this token?": click a token of the answer
    _settings_accordion(c)
    _explorer_and_compare(ctx, c)
    c["history"], c["touched"] = gr.State([]), gr.State(False)
    _wire(c, GenerateEvents(GenerateHandlers(ctx, service), c), generation_limit(ctx))
    wire_inspect(ctx, inspect)
    return {k: v for k, v in c.items() if isinstance(v, gr.components.Component)}
