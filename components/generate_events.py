"""Gradio adapters of the Generate tab: read the components' values, call :class:`GenerateHandlers`, map the
plain results onto component updates (``gr.skip()`` where nothing changed); and the tab's stable API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from components.common import progress_reporter, ui_errors
from components.generate_handlers import KNOB_NAMES, GenerateHandlers, ModelBSettings, View
from components.i18n import request_lang, t
from pipelines.context import GENERATION, HEAVY, AppContext, generation_limit
from pipelines.generation import DEFAULT_SYSTEM, GenerationService, GenerationSettings
from pipelines.generation.presets import PRESETS
from pipelines.generation.settings import Mode
from pipelines.messages import Msg
from pipelines.sessions import session_key


def _skip_none(value: Any) -> Any:
    return gr.skip() if value is None else value


def _reporter(progress: gr.Progress | None, lang: str) -> Callable[[float, Any], None]:
    """Adapt a ``gr.Progress`` to the pipelines' ``(fraction, description)`` callback; keyed messages are
    rendered in ``lang``, plain strings are passed through."""
    plain = progress_reporter(progress)

    def report(fraction: float, desc: Any) -> None:
        plain(fraction, desc.render(lang) if isinstance(desc, Msg) else str(desc))

    return report


class GenerateEvents:
    """The tab's event functions; ``parts`` maps names to the tab's components (see ``build_generate_tab``)."""

    def __init__(self, handlers: GenerateHandlers, parts: dict[str, Any]) -> None:
        self.handlers = handlers
        self.parts = parts

    def _settings(self, data: dict) -> GenerationSettings:
        knobs = {name: data[self.parts[name]] for name in KNOB_NAMES}
        return self.handlers.settings(knobs, touched=bool(data[self.parts["touched"]]))

    def _chat(self, data: dict, message: str, past: list, request: gr.Request | None,
              progress: gr.Progress | None) -> Iterator[tuple]:
        lang = request_lang(request)
        runs = self.handlers.chat(session_key(request), data[self.parts["picker"]], message, past,
                                  self._settings(data), system=data[self.parts["system"]], lang=lang,
                                  progress=_reporter(progress, lang))
        for shown, view in runs:
            completion = view.mode == Mode.COMPLETION
            cleared = "" if not completion and view.done else gr.skip()
            output = gr.Textbox(value=view.text, visible=completion)
            yield shown, shown, output, _skip_none(view.tokens), view.stats, cleared

    def generate(self, data: dict, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        yield from self._chat(data, data[self.parts["prompt"]], list(data[self.parts["history"]] or []), request,
                              progress)

    def regenerate(self, data: dict, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        message, past = self.handlers.regenerate_turn(list(data[self.parts["history"]] or []))
        yield from self._chat(data, message, past, request, progress)

    def compare(self, data: dict, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        p = self.parts
        b = ModelBSettings(data[p["precision_b"]], data[p["sampling_b"]], float(data[p["temperature_b"]]),
                           data[p["engine_b"]])
        lang = request_lang(request)
        runs = self.handlers.compare(session_key(request), (data[p["picker"]], data[p["picker_b"]]),
                                     data[p["prompt"]], self._settings(data), b, system=data[p["system"]],
                                     lang=lang, progress=_reporter(progress, lang))

        def side(view: View | None) -> tuple:
            if view is None:
                return gr.skip(), gr.skip(), gr.skip()
            return view.text, _skip_none(view.tokens), view.stats

        for left, right in runs:
            yield (*side(left), *side(right))

    def explore(self, data: dict, request: gr.Request) -> Any:
        p = self.parts
        return self.handlers.explore(data[p["picker"]], data[p["prompt"]], self._settings(data),
                                     system=data[p["system"]], lang=request_lang(request))

    def stop(self, request: gr.Request) -> tuple:
        last = self.handlers.stop(session_key(request), request_lang(request))
        return (gr.skip(), gr.skip()) if last is None else last

    def preset(self, name: str, message: str, request: gr.Request) -> tuple:
        return (*self.handlers.preset(name, message, request_lang(request)), True)

    @staticmethod
    def preset_info(name: str) -> Any:
        """What the preset sets (a translated description per preset)."""
        return t(f"generate.preset_desc.{name}") if name in PRESETS else ""

    def mode_changed(self, mode: str, touched: bool) -> tuple:
        """Switching mode shows the answer box only for completion, and resets untouched sampling knobs."""
        output = gr.Textbox(visible=mode == Mode.COMPLETION)
        if touched:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), output
        return (*self.handlers.mode_knobs(mode), output)

    @staticmethod
    def clear() -> tuple:
        return [], [], "", "", None


def register_api(ctx: AppContext, service: GenerationService) -> None:
    """The documented, stable API endpoints of the Generate tab (``model`` defaults to ``AppConfig.chat_model``;
    ``settings=None`` uses the mode's defaults: chat samples with a repetition penalty, completion is greedy)."""
    default_model = ctx.config.chat_model

    @ui_errors
    def generate(prompt: str, model: str = default_model, settings: dict | None = None,
                 system: str = DEFAULT_SYSTEM) -> str:
        """Generate text for `prompt` with `model` (embedded name, hub id, folder or run:<id>). `settings` keys:
        max_new_tokens, do_sample, temperature, top_p, top_k, repetition_penalty, stop_strings, seed,
        precision (auto|float32|bfloat16|int8|int8-weight), mode (auto|chat|completion),
        engine (auto|transformers|llama.cpp). Returns the text."""
        return service.generate(model, prompt, GenerationSettings.from_dict(settings), system=system).text

    @ui_errors
    def generate_details(prompt: str, model: str = default_model, settings: dict | None = None,
                         system: str = DEFAULT_SYSTEM) -> dict:
        """Like /generate, but returns {"text", "prompt", "stats", "tokens": [{id, text, prob, top}]}."""
        result = service.generate(model, prompt, GenerationSettings.from_dict(settings), system=system)
        return {"text": result.text, "prompt": result.prompt, "stats": result.stats(),
                "tokens": [tok.to_dict() for tok in result.tokens]}

    @ui_errors
    def generate_stream(prompt: str, model: str = default_model, settings: dict | None = None,
                        system: str = DEFAULT_SYSTEM) -> Iterator[str]:
        """Streaming /generate: yields the text so far after every token (the last value is the final text)."""
        for result in service.stream(model, prompt, GenerationSettings.from_dict(settings), system=system):
            yield result.text

    @ui_errors
    def next_tokens(prompt: str, model: str = default_model, settings: dict | None = None, k: int = 20) -> list:
        """The k (<= 100) most likely next tokens after `prompt` as [{"token", "prob", "id"}], most likely first."""
        rows, _ = service.next_tokens(model, prompt, GenerationSettings.from_dict(settings), k=k)
        return rows

    for fn in (generate, generate_details, generate_stream):  # generations run together (see GENERATION)
        gr.api(fn, api_name=fn.__name__, concurrency_id=GENERATION, concurrency_limit=generation_limit(ctx))
    gr.api(next_tokens, api_name="next_tokens", concurrency_id=HEAVY)
