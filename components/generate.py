"""Generate tab: streaming chat and completion with a token view, next-token explorer and model comparison.

Public API (stable, usable from gradio_client): ``/generate``, ``/generate_stream``, ``/generate_details``
and ``/next_tokens`` -- see :func:`register_api`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from components.common import examples, model_picker, progress_reporter, run_example, ui_errors
from components.i18n import request_lang, t, text
from pipelines.context import HEAVY, AppContext
from pipelines.generation import DEFAULT_MODEL, DEFAULT_SYSTEM, GenerationService, GenerationSettings
from pipelines.generation.presets import PRESETS, apply_preset
from pipelines.generation.render import next_token_figure, token_html
from pipelines.generation.settings import MAX_NEW_TOKENS_CAP, MODES, PRECISIONS, parse_stop_strings

KINDS = ("causal-lm",)
TOKEN_VIEW_EVERY_S = 0.3  # re-render the token view at most this often while streaming


class StopRegistry:
    """One stop event per browser session, so the Stop button ends that session's generation only."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self.latest: dict[str, Any] = {}  # the last snapshot per session, shown when Stop cancels the stream
        self._lock = threading.Lock()

    def new(self, request: gr.Request | None) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events[getattr(request, "session_hash", None) or "api"] = event
        return event

    def stop(self, request: gr.Request | None) -> Any:
        """Set the session's stop event; return its last snapshot (or None)."""
        key = getattr(request, "session_hash", None) or "api"
        with self._lock:
            event = self._events.get(key)
        if event is not None:
            event.set()
        return self.latest.pop(key, None)

    def forget(self, request: gr.Request | None, event: threading.Event) -> None:
        with self._lock:
            key = getattr(request, "session_hash", None) or "api"
            if self._events.get(key) is event:
                del self._events[key]


def _settings(precision: str, mode: str, max_new: float, sample: bool, temperature: float, top_p: float,
              top_k: float, rep: float, stops: str, seed: float) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=int(max_new), do_sample=bool(sample), temperature=temperature, top_p=top_p, top_k=int(top_k),
        repetition_penalty=rep, stop_strings=parse_stop_strings(stops), seed=int(seed if seed is not None else 0),
        precision=precision, mode=mode,
    ).validated()


def _stream_views(results: Iterator[Any], lang: str) -> Iterator[tuple[Any, Any, Any]]:
    """(text, token view or gr.skip(), stats) per snapshot, re-rendering the token view only now and then."""
    legend = text("generate.legend", lang)
    rendered_at = 0.0
    for result in results:
        now = time.monotonic()
        view: Any = gr.skip()
        if result.done or now - rendered_at >= TOKEN_VIEW_EVERY_S:
            view, rendered_at = token_html(result.tokens, legend), now
        yield result, view, result.stats()


def build_generate_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Generate tab inside the current Blocks context."""
    service = GenerationService(ctx)
    stops = StopRegistry()
    gr.Markdown(t("generate.intro"))
    with gr.Row():
        picker = model_picker(ctx, kinds=KINDS, value=DEFAULT_MODEL)
        precision = gr.Dropdown(list(PRECISIONS), value="auto", label=t("generate.precision"),
                                info=t("generate.precision_info"))
        mode = gr.Radio(list(MODES), value="auto", label=t("generate.mode"), info=t("generate.mode_info"))
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label=t("generate.chat"), height=300, elem_id="generate-chat")
            prompt = gr.Textbox(label=t("generate.prompt"), lines=3, placeholder=t("generate.prompt_placeholder"),
                                elem_id="generate-prompt", max_length=ctx.config.max_input_chars)
            with gr.Row():
                run_btn = gr.Button(t("generate.run"), variant="primary", elem_id="generate-run")
                stop_btn = gr.Button(t("generate.stop"), variant="stop", elem_id="generate-stop")
                regen_btn = gr.Button(t("generate.regenerate"))
                clear_btn = gr.Button(t("generate.clear"))
            with gr.Row():
                preset = gr.Dropdown([(t(f"generate.preset.{k}"), k) for k in PRESETS], value="story",
                                     label=t("generate.preset"), scale=3)
                preset_btn = gr.Button(t("generate.apply_preset"), scale=1)
            output = gr.Textbox(label=t("generate.answer"), lines=6, interactive=False, elem_id="generate-output")
            prompt_examples = examples([["Write a haiku about the sea."],
                                        ["Explain in two sentences what a language model is."],
                                        ["用一句话介绍你自己。"]], [prompt])
        with gr.Column(scale=2):
            tokens = gr.HTML(label=t("generate.tokens"), elem_id="generate-tokens")
            stats = gr.JSON(label=t("generate.stats"), elem_id="generate-stats")
    with gr.Accordion(t("generate.settings"), open=False):
        system = gr.Textbox(DEFAULT_SYSTEM, label=t("generate.system"), lines=2)
        with gr.Row():
            max_new = gr.Slider(1, MAX_NEW_TOKENS_CAP, value=128, step=1, label=t("generate.max_new_tokens"),
                                info=t("generate.max_new_tokens_info"))
            sample = gr.Checkbox(False, label=t("generate.sample"), info=t("generate.sample_info"))
            seed = gr.Number(0, precision=0, label=t("generate.seed"), info=t("generate.seed_info"))
        with gr.Row():
            temperature = gr.Slider(0.05, 2.0, value=0.7, step=0.05, label=t("generate.temperature"))
            top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.01, label=t("generate.top_p"))
            top_k = gr.Slider(0, 200, value=50, step=1, label=t("generate.top_k"))
            rep = gr.Slider(1.0, 2.0, value=1.0, step=0.01, label=t("generate.repetition_penalty"))
        stop_strings = gr.Textbox(label=t("generate.stop_strings"), info=t("generate.stop_strings_info"), lines=2)
    with gr.Accordion(t("generate.explorer"), open=False):
        gr.Markdown(t("generate.explorer_info"))
        explore_btn = gr.Button(t("generate.explore"), elem_id="generate-explore")
        plot = gr.Plot(label=t("generate.next_tokens"), elem_id="generate-plot")
    with gr.Accordion(t("generate.compare"), open=False):
        gr.Markdown(t("generate.compare_info"))
        picker_b = model_picker(ctx, kinds=KINDS, value=DEFAULT_MODEL, label_key="generate.model_b")
        compare_btn = gr.Button(t("generate.run_compare"), elem_id="generate-compare")
        with gr.Row():
            with gr.Column():
                out_a = gr.Textbox(label=t("generate.model_a_answer"), lines=6, interactive=False)
                tokens_a = gr.HTML()
                stats_a = gr.JSON(label=t("generate.stats"))
            with gr.Column():
                out_b = gr.Textbox(label=t("generate.model_b_answer"), lines=6, interactive=False)
                tokens_b = gr.HTML()
                stats_b = gr.JSON(label=t("generate.stats"))
    history = gr.State([])
    knobs = [precision, mode, max_new, sample, temperature, top_p, top_k, rep, stop_strings, seed]

    def settings_of(data: dict) -> GenerationSettings:
        return _settings(*(data[k] for k in knobs))

    def run(data: dict, message: str, past: list, request: gr.Request | None, progress: gr.Progress) -> Iterator:
        event = stops.new(request)
        try:
            results = service.stream(data[picker], message, settings_of(data), system=data[system], history=past,
                                     stop_event=event, progress=progress_reporter(progress))
            key = getattr(request, "session_hash", None) or "api"
            for result, view, numbers in _stream_views(results, request_lang(request)):
                stops.latest[key] = result
                turn = [{"role": "user", "content": message}, {"role": "assistant", "content": result.text}]
                shown = past + turn if result.mode == "chat" else past
                cleared = "" if result.mode == "chat" and result.done else gr.skip()
                yield shown, shown, result.text, view, numbers, cleared
            stops.latest.pop(key, None)  # finished normally: nothing for Stop to show
        finally:
            stops.forget(request, event)

    @ui_errors
    def ui_generate(data: dict, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        yield from run(data, data[prompt], list(data[history] or []), request, progress)

    @ui_errors
    def ui_regenerate(data: dict, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        past = list(data[history] or [])
        if len(past) < 2 or past[-1]["role"] != "assistant":
            raise gr.Error(text("generate.nothing_to_regenerate", request_lang(request)))
        yield from run(data, past[-2]["content"], past[:-2], request, progress)

    @ui_errors
    def ui_compare(data: dict, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        settings, lang = settings_of(data), request_lang(request)
        event = stops.new(request)
        left: tuple = ("", "", None)
        try:
            for side, ref in enumerate((data[picker], data[picker_b])):
                results = service.stream(ref, data[prompt], settings, system=data[system], stop_event=event,
                                         progress=progress_reporter(progress))
                for result, view, numbers in _stream_views(results, lang):
                    current = (result.text, view, numbers)
                    yield (*current, gr.skip(), gr.skip(), gr.skip()) if side == 0 else (*left, *current)
                    if side == 0 and result.done:
                        left = current
                if event.is_set():
                    break
        finally:
            stops.forget(request, event)

    @ui_errors
    def ui_explore(data: dict) -> Any:
        rows, prepared = service.next_tokens(data[picker], data[prompt], settings_of(data), system=data[system])
        return next_token_figure(rows, f"{prepared.mode}: {len(prepared.ids)} prompt tokens")

    @ui_errors
    def ui_fill_preset(name: str, message: str, request: gr.Request) -> tuple:
        applied = apply_preset(name, message, request_lang(request))
        s = applied.settings
        return (applied.prompt, applied.system, s.get("max_new_tokens", 128), s.get("do_sample", False),
                s.get("temperature", 0.7), s.get("top_p", 0.9))

    def ui_stop(request: gr.Request) -> tuple:
        last = stops.stop(request)
        if last is None:
            return gr.skip(), gr.skip()
        numbers = {**last.stats(), "stop_reason": "stopped"}
        return token_html(last.tokens, text("generate.legend", request_lang(request))), numbers

    register_api(service)  # first, so the stable names are never taken by a UI event
    chat_outputs = [chatbot, history, output, tokens, stats, prompt]
    chat_inputs = {picker, prompt, system, history, *knobs}
    private = {"concurrency_id": HEAVY, "api_visibility": "private"}
    gen_event = run_btn.click(ui_generate, chat_inputs, chat_outputs, **private)
    submit_event = prompt.submit(ui_generate, chat_inputs, chat_outputs, **private)
    regen_event = regen_btn.click(ui_regenerate, chat_inputs, chat_outputs, **private)
    example_event = run_example(prompt_examples, ui_generate, chat_inputs, chat_outputs, concurrency_id=HEAVY)
    compare_event = compare_btn.click(ui_compare, {picker, picker_b, prompt, system, *knobs},
                                      [out_a, tokens_a, stats_a, out_b, tokens_b, stats_b], **private)
    stop_btn.click(ui_stop, None, [tokens, stats], queue=False, api_visibility="private",
                   cancels=[gen_event, submit_event, regen_event, compare_event, example_event])
    clear_btn.click(lambda: ([], [], "", "", None), None, [chatbot, history, output, tokens, stats],
                    queue=False, api_visibility="private")
    explore_btn.click(ui_explore, {picker, prompt, system, *knobs}, plot, **private)
    preset_btn.click(ui_fill_preset, [preset, prompt], [prompt, system, max_new, sample, temperature, top_p],
                     queue=False, api_visibility="private")
    return {
        "picker": picker, "precision": precision, "mode": mode, "chatbot": chatbot, "prompt": prompt,
        "run": run_btn, "stop": stop_btn, "regenerate": regen_btn, "clear": clear_btn, "output": output,
        "tokens": tokens, "stats": stats, "plot": plot, "compare": compare_btn, "history": history,
    }


def register_api(service: GenerationService) -> None:
    """The documented, stable API endpoints of the Generate tab."""

    @ui_errors
    def generate(prompt: str, model: str = DEFAULT_MODEL, settings: dict | None = None,
                 system: str = DEFAULT_SYSTEM) -> str:
        """Generate text for `prompt` with `model` (embedded name, hub id, folder or run:<id>). `settings` keys:
        max_new_tokens, do_sample, temperature, top_p, top_k, repetition_penalty, stop_strings, seed,
        precision (auto|float32|bfloat16|int8|int8-weight), mode (auto|chat|completion). Returns the text."""
        return service.generate(model, prompt, GenerationSettings.from_dict(settings), system=system).text

    @ui_errors
    def generate_details(prompt: str, model: str = DEFAULT_MODEL, settings: dict | None = None,
                         system: str = DEFAULT_SYSTEM) -> dict:
        """Like /generate, but returns {"text", "prompt", "stats", "tokens": [{id, text, prob, top}]}."""
        result = service.generate(model, prompt, GenerationSettings.from_dict(settings), system=system)
        return {"text": result.text, "prompt": result.prompt, "stats": result.stats(),
                "tokens": [tok.to_dict() for tok in result.tokens]}

    @ui_errors
    def generate_stream(prompt: str, model: str = DEFAULT_MODEL, settings: dict | None = None,
                        system: str = DEFAULT_SYSTEM) -> Iterator[str]:
        """Streaming /generate: yields the text so far after every token (the last value is the final text)."""
        for result in service.stream(model, prompt, GenerationSettings.from_dict(settings), system=system):
            yield result.text

    @ui_errors
    def next_tokens(prompt: str, model: str = DEFAULT_MODEL, settings: dict | None = None, k: int = 20) -> list:
        """The k (<= 100) most likely next tokens after `prompt` as [{"token", "prob", "id"}], most likely first."""
        rows, _ = service.next_tokens(model, prompt, GenerationSettings.from_dict(settings), k=k)
        return rows

    for fn in (generate, generate_details, generate_stream, next_tokens):
        gr.api(fn, api_name=fn.__name__, concurrency_id=HEAVY)
