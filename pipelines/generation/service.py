"""The Generate tab's entry point: picks the model and precision, builds the prompt, streams the answer.

torch and transformers are imported when a model is first needed, not when the app starts.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.context import AppContext
from pipelines.engines.remote import backends_of, is_remote
from pipelines.errors import InputError, ModelLoadError
from pipelines.generation.presets import is_chinese
from pipelines.generation.results import GenerationResult
from pipelines.generation.settings import GenerationSettings, Mode
from pipelines.messages import Msg

if TYPE_CHECKING:
    from pipelines.generation.engine import GenerationEngine
    from pipelines.generation.precision import PrecisionSelector
    from pipelines.generation.threads import ComputeThread

ProgressFn = Callable[[float, str], None]
DEFAULT_SYSTEM = "You are a helpful assistant."
ANSWER_RESERVE = 16  # tokens of the context a chat always leaves for the answer


@dataclass
class PreparedPrompt:
    """What goes into the model: the formatted prompt, its token ids and how it was built."""

    prompt: str
    ids: list[int]
    mode: str
    notes: list[Msg] = field(default_factory=list)
    dropped_turns: int = 0


def is_embedded_model(loaded: Any) -> bool:
    """True for an embedded model, or a fine-tuned run on one (duck-typed ``LoadedModel``)."""
    ref = getattr(loaded, "ref", None)
    base = getattr(ref, "base", None) or ref
    return getattr(base, "source", "") == "embedded"


class GenerationService:
    """Shared by the UI and the API; one per app. Models run in the context's compute thread (``ctx.compute``)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()

    @property
    def default_model(self) -> str:
        """The default chat model (``AppConfig.chat_model``, from ``LMW_CHAT_MODEL``)."""
        return self.ctx.config.chat_model

    @functools.cached_property
    def compute(self) -> ComputeThread:
        compute = self.ctx.compute
        compute.set_threads(self.ctx.config.gen_threads)
        return compute

    @functools.cached_property
    def precision(self) -> PrecisionSelector:
        from pipelines.generation.precision import PrecisionSelector, precision_cache_file

        return PrecisionSelector(self.ctx.manager, precision_cache_file(self.ctx.config.cache_dir), self.compute)

    def engine(self, ref: str, precision: str = "auto", progress: ProgressFn | None = None,
               engine: str = "auto", needs_internals: bool = False) -> GenerationEngine:
        """The engine that answers ``ref`` (:func:`~pipelines.generation.engines.choose_engine`), its model loaded."""
        from pipelines.engines.internals import refuse_remote
        from pipelines.generation.engines import Engine, choose_engine

        refuse_remote(self.ctx, ref)  # a remote model only generates: this path loads the model's weights
        ref = (ref or "").strip() or self.default_model
        choice = choose_engine(self.ctx, ref, engine, needs_internals, precision)
        if choice.engine == Engine.LLAMACPP and choice.source is not None:
            try:
                return self._llamacpp(choice.source, progress)
            except ModelLoadError as exc:
                if engine != Engine.AUTO or choice.source.run is None:
                    raise
                note = Msg.of("generate.note.llamacpp_failed", reason=exc.render("en")[:200])
                return self._transformers(ref, precision, progress, note)
        return self._transformers(ref, precision, progress, choice.note)

    def _llamacpp(self, source: Any, progress: ProgressFn | None) -> GenerationEngine:
        from pipelines.generation.llamacpp import LlamaCppEngine

        loaded = self.ctx.manager.load_llamacpp(source, self.compute.threads, progress)
        return LlamaCppEngine(loaded, self.compute)

    def _transformers(self, ref: str, precision: str, progress: ProgressFn | None,
                      note: Msg | None = None) -> GenerationEngine:
        from pipelines.generation.engine import GenerationEngine

        loaded, used = self.precision.load(ref, precision, progress)
        if loaded.kind != "causal-lm":
            raise InputError("generate.error.not_causal", ref=ref[:200])
        engine = GenerationEngine(loaded, used, self.compute)
        engine.notes = [note] if note else []
        engine.batcher = getattr(self.ctx, "decode_batcher", None)  # concurrent generations share decoding steps
        return engine

    def prepare(
        self,
        engine: GenerationEngine,
        text: str,
        mode: str = "auto",
        system: str = "",
        history: list[dict[str, str]] | None = None,
        reserve: int = ANSWER_RESERVE,
    ) -> PreparedPrompt:
        """Format ``text`` as a chat turn (after ``history``, with ``system``) or as a raw completion prompt.

        The whole input is refused only above the app's prompt cap (``Limits.max_prompt_chars``); a chat that
        is longer than the model's context loses its oldest turns, counted in tokens, and says how many.
        """
        text = text or ""
        history = [m for m in (history or []) if m.get("role") in ("user", "assistant")]
        self.refuse_oversized(text, system, history)
        used = engine.resolve_mode(mode)
        notes = [Msg.of("generate.note.english_model")] if is_chinese(text) and is_embedded_model(engine.loaded) else []
        if used == Mode.COMPLETION:
            ids = engine.encode(text, chat=False) if text.strip() else []
            if not ids:  # blank, or only characters the tokenizer drops (e.g. some control characters)
                raise InputError("generate.error.empty_prompt")
            return PreparedPrompt(text, ids, used, notes)
        if not text.strip():
            raise InputError("generate.error.empty_message")
        messages = [{"role": "system", "content": system}] if (system or "").strip() else []
        messages += [{"role": m["role"], "content": str(m.get("content", ""))} for m in history]
        messages.append({"role": "user", "content": text})
        prompt, ids, dropped = engine.fit_chat(messages, reserve)
        if dropped:
            notes.append(Msg.of("generate.note.dropped_turns", turns=dropped, context=engine.context))
        return PreparedPrompt(prompt, ids, used, notes, dropped)

    def refuse_oversized(self, text: str, system: str = "", history: list[dict[str, str]] | None = None) -> None:
        """Refuse a prompt above the app's cap (``Limits.refuse``), before any model is loaded for it."""
        self.ctx.limits.refuse("".join([system or "", text or "", *(str(m.get("content", "")) for m in history or [])]))

    def stream(
        self,
        ref: str,
        text: str,
        settings: GenerationSettings,
        *,
        system: str = "",
        history: list[dict[str, str]] | None = None,
        stop_event: threading.Event | None = None,
        progress: ProgressFn | None = None,
    ) -> Iterator[GenerationResult]:
        """Load (if needed), format and stream one answer; ``remote:<endpoint>/<model>`` streams from a remote
        OpenAI-compatible endpoint (:mod:`pipelines.engines.remote_stream`)."""
        settings = settings.validated()
        if is_remote(ref):
            from pipelines.engines.remote_stream import RemoteGenerator

            generator = RemoteGenerator(backends_of(self.ctx), self.ctx.limits)
            yield from generator.stream(ref, text, settings, system=system, history=history, stop_event=stop_event)
            return
        self.refuse_oversized(text, system, history)
        engine = self.engine(ref, settings.precision, progress, settings.engine)
        prepared = self.prepare(engine, text, settings.mode, system, history,
                                reserve=min(settings.max_new_tokens, engine.context // 2))
        auto_note = None
        if settings.precision == "auto" and engine.name == "transformers":
            auto_note = self.precision.note(ref or self.default_model)
        notes = [*prepared.notes, *engine.notes, *([auto_note] if auto_note else [])]
        yield from engine.stream(prepared.ids, settings, stop_event, prepared.prompt, notes, prepared.mode,
                                 prepared.dropped_turns)

    def generate(self, ref: str, text: str, settings: GenerationSettings, **kwargs: Any) -> GenerationResult:
        result = GenerationResult()
        for snapshot in self.stream(ref, text, settings, **kwargs):
            result = snapshot
        return result

    def next_tokens(
        self, ref: str, text: str, settings: GenerationSettings, system: str = "", k: int = 20
    ) -> tuple[list[dict[str, Any]], PreparedPrompt]:
        """The ``k`` most likely next tokens after the prompt (formatted as generation would format it)."""
        settings = settings.validated()
        self.refuse_oversized(text, system)
        engine = self.engine(ref, settings.precision, engine=settings.engine)
        prepared = self.prepare(engine, text, settings.mode, system)
        return engine.next_tokens(prepared.ids, k=max(1, min(k, 100))), prepared
