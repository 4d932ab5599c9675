"""The Generate tab's handlers: plain values in, plain values out (testable without a server).

Every run registers a :class:`~pipelines.sessions.StopHandle` under ``(session, "generate")`` in ``ctx.sessions``;
Stop finds it there, and its ``latest`` snapshot is what Stop shows.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from pipelines.context import AppContext
from pipelines.engines.remote import is_remote
from pipelines.errors import InputError
from pipelines.generation import GenerationResult, GenerationService, GenerationSettings
from pipelines.generation.presets import apply_preset
from pipelines.generation.render import next_token_figure, stats_view, token_html
from pipelines.generation.settings import Mode, StopReason, mode_defaults, parse_stop_strings
from pipelines.insight.generated import remember_exchange
from pipelines.messages import render
from pipelines.sessions import StopHandle

KIND = "generate"
STOPPED_VALUE = "generate:stopped"  # the last snapshot of a run that ended without finishing (for Stop)
TOKEN_VIEW_EVERY_S = 0.3  # re-render the token view at most this often while streaming
SAME = "same"  # model B settings: as model A
KNOB_NAMES = ("engine", "precision", "mode", "max_new", "sample", "temperature", "top_p", "top_k", "rep",
              "stop_strings", "seed")
ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class View:
    """One snapshot for the UI: the answer text, the token view (None: unchanged), the stats panel."""

    text: str
    tokens: str | None
    stats: dict[str, Any] | None
    mode: str
    done: bool


@dataclass(frozen=True)
class ModelBSettings:
    """How model B differs from model A in Compare (``same`` keeps A's value)."""

    precision: str = SAME
    sampling: str = SAME  # same, greedy or sample
    temperature: float = 0.7
    engine: str = SAME


class GenerateHandlers:
    """Generation, Stop, Regenerate, Compare, the next-token explorer and presets for one app."""

    def __init__(self, ctx: AppContext, service: GenerationService | None = None) -> None:
        self.ctx = ctx
        self.service = service or GenerationService(ctx)

    # ---- settings ---------------------------------------------------------------------------------------------
    @staticmethod
    def settings(knobs: dict[str, Any], touched: bool = True) -> GenerationSettings:
        """Settings from the knobs' values; untouched sampling knobs follow the mode's defaults."""
        sampling = {"do_sample": knobs.get("sample"), "temperature": knobs.get("temperature"),
                    "top_p": knobs.get("top_p"), "top_k": knobs.get("top_k"), "repetition_penalty": knobs.get("rep")}
        if not touched:
            sampling = dict.fromkeys(sampling)
        seed = knobs.get("seed")
        return GenerationSettings(
            max_new_tokens=int(knobs.get("max_new") or 128), stop_strings=parse_stop_strings(knobs.get("stop_strings")),
            seed=int(seed if seed is not None else 0), precision=knobs.get("precision") or "auto",
            mode=knobs.get("mode") or "auto", engine=knobs.get("engine") or "auto",
            **{k: v for k, v in sampling.items() if v is not None},
        ).validated()

    @staticmethod
    def mode_knobs(mode: str) -> tuple[bool, float, float, int, float]:
        """(sample, temperature, top-p, top-k, repetition penalty) a mode starts with."""
        d = mode_defaults(mode)
        return d.do_sample, d.temperature, d.top_p, d.top_k, d.repetition_penalty

    @staticmethod
    def model_b_settings(settings: GenerationSettings, b: ModelBSettings) -> GenerationSettings:
        """Model A's settings with B's precision and sampling where they differ."""
        changes: dict[str, Any] = {}
        if b.precision and b.precision != SAME:
            changes["precision"] = b.precision
        if b.engine and b.engine != SAME:
            changes["engine"] = b.engine
        if b.sampling == "greedy":
            changes["do_sample"] = False
        elif b.sampling == "sample":
            changes.update(do_sample=True, temperature=b.temperature)
        return replace(settings, **changes).validated()

    # ---- generation -------------------------------------------------------------------------------------------
    def stream(self, session: str, model: str, message: str, settings: GenerationSettings, *, system: str = "",
               history: list[dict[str, str]] | None = None, lang: str = "en",
               progress: ProgressFn | None = None) -> Iterator[View]:
        """Stream one answer as :class:`View` snapshots; Stop (:meth:`stop`) ends it."""
        with self._registered(session) as handle:
            yield from self._views(handle, model, message, settings, system, history, lang, progress)
            self._remember(session, model, message, settings, system, handle.latest)

    def _remember(self, session: str, model: str, message: str, settings: GenerationSettings, system: str,
                  result: GenerationResult | None) -> None:
        """Keep a local model's finished answer for the token inspector and the Attention tab."""
        if result is None or is_remote(model):
            return
        remember_exchange(self.ctx.sessions, session, message, result.text, model or self.service.default_model,
                          mode=result.mode or settings.mode, precision=settings.precision, system=system,
                          formatted=result.prompt, answer_ids=[t.id for t in result.tokens])

    @contextlib.contextmanager
    def _registered(self, session: str) -> Iterator[StopHandle]:
        """A stop handle registered as the session's generation for the duration of a run."""
        handle = StopHandle()
        self.ctx.sessions.put(session, KIND, handle)
        self.ctx.sessions.pop_value(session, STOPPED_VALUE)
        try:
            yield handle
        finally:
            if not handle.done and handle.latest is not None:  # cancelled or failed: Stop shows this snapshot
                self.ctx.sessions.set_value(session, STOPPED_VALUE, handle.latest)
            handle.done = True
            self.ctx.sessions.forget(session, KIND, handle)

    def _views(self, handle: StopHandle, model: str, message: str, settings: GenerationSettings, system: str,
               history: list[dict[str, str]] | None, lang: str, progress: ProgressFn | None,
               finish: bool = True) -> Iterator[View]:
        results = self.service.stream(model, message, settings, system=system, history=history,
                                      stop_event=handle.stop_event, progress=progress)
        rendered_at = 0.0
        for result in results:
            handle.latest = result
            now = time.monotonic()
            view = None
            if result.done or now - rendered_at >= TOKEN_VIEW_EVERY_S:
                view, rendered_at = self.token_view(result, lang), now
            yield View(result.text, view, self.stats_view(result, lang), result.mode, result.done)
        handle.done = finish

    def chat(self, session: str, model: str, message: str, history: list[dict[str, str]],
             settings: GenerationSettings, *, system: str = "", lang: str = "en",
             progress: ProgressFn | None = None) -> Iterator[tuple[list[dict[str, str]], View]]:
        """(history to show, view) per snapshot: in chat mode the new turn is appended to ``history``."""
        past = list(history or [])
        for view in self.stream(session, model, message, settings, system=system, history=past, lang=lang,
                                progress=progress):
            turn = [{"role": "user", "content": message}, {"role": "assistant", "content": view.text}]
            yield (past + turn if view.mode == Mode.CHAT else past), view

    @staticmethod
    def regenerate_turn(history: list[dict[str, str]]) -> tuple[str, list[dict[str, str]]]:
        """(the last user message, the history before it) to answer again."""
        past = list(history or [])
        if len(past) < 2 or past[-1].get("role") != "assistant":
            raise InputError("generate.error.nothing_to_regenerate")
        return str(past[-2]["content"]), past[:-2]

    def compare(self, session: str, models: tuple[str, str], message: str, settings: GenerationSettings,
                b: ModelBSettings | None = None, *, system: str = "", lang: str = "en",
                progress: ProgressFn | None = None) -> Iterator[tuple[View | None, View | None]]:
        """(A's view, B's view) per snapshot: A streams first, then B beside A's final answer; Stop ends both."""
        both = (settings, self.model_b_settings(settings, b or ModelBSettings()))
        left: View | None = None
        with self._registered(session) as handle:
            for side, (model, side_settings) in enumerate(zip(models, both, strict=True)):
                for view in self._views(handle, model, message, side_settings, system, None, lang, progress,
                                        finish=side == 1):
                    left = view if side == 0 else left
                    yield (view, None) if side == 0 else (left, view)
                if handle.stop_event.is_set():
                    break

    def stop(self, session: str, lang: str = "en") -> tuple[str, dict[str, Any]] | None:
        """Stop the session's generation; (token view, stats) of its last snapshot, or None when none ran."""
        handle = self.ctx.sessions.stop(session, KIND)
        last = getattr(handle, "latest", None) or self.ctx.sessions.pop_value(session, STOPPED_VALUE)
        if last is None:
            return None
        last = replace(last, stop_reason=StopReason.STOPPED)
        return self.token_view(last, lang), self.stats_view(last, lang)

    @staticmethod
    def stats_view(result: GenerationResult, lang: str = "en") -> dict[str, Any] | None:
        """The stats panel: :func:`stats_view`'s rows with the engine that answered beside the precision."""
        shown = stats_view(result.stats(lang), lang)
        if shown is None or not result.engine:
            return shown
        anchor = render("generate.stat.precision", lang)
        rows: dict[str, Any] = {}
        for label, value in shown.items():
            if label == anchor:
                rows[render("generate.stat.engine", lang)] = result.engine
            rows[label] = value
        rows.setdefault(render("generate.stat.engine", lang), result.engine)
        return rows

    @staticmethod
    def token_view(result: GenerationResult, lang: str = "en") -> str:
        return token_html(result.tokens, render("generate.legend", lang), render("generate.top_alternatives", lang),
                          render("generate.fragment", lang))

    # ---- explorer and presets ---------------------------------------------------------------------------------
    def explore(self, model: str, prompt: str, settings: GenerationSettings, system: str = "",
                lang: str = "en") -> Any:
        """A bar chart of the 20 most likely next tokens after the prompt."""
        rows, prepared = self.service.next_tokens(model, prompt, settings, system=system)
        title = render("generate.explorer_title", lang, {"mode": render(f"generate.mode.{prepared.mode}", lang),
                                                         "tokens": len(prepared.ids)})
        return next_token_figure(rows, title, render("generate.probability", lang))

    @staticmethod
    def preset(name: str, message: str, lang: str = "en") -> tuple[str, str, int, bool, float, float, float]:
        """(prompt, system, max new tokens, sample, temperature, top-p, repetition penalty) of a preset."""
        applied = apply_preset(name, message, lang)
        s = applied.settings
        return (applied.prompt, applied.system, s.get("max_new_tokens", 128), s.get("do_sample", False),
                s.get("temperature", 0.7), s.get("top_p", 0.9), s.get("repetition_penalty", 1.0))
