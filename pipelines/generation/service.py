"""The Generate tab's entry point: picks the model and precision, builds the prompt, streams the answer."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pipelines.context import AppContext
from pipelines.errors import InputError
from pipelines.generation.engine import GenerationEngine, GenerationResult, NextTokenTask
from pipelines.generation.precision import PrecisionSelector, precision_cache_file
from pipelines.generation.settings import GenerationSettings

ProgressFn = Callable[[float, str], None]
DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_SYSTEM = "You are a helpful assistant."
MAX_HISTORY_MESSAGES = 64


@dataclass
class PreparedPrompt:
    """What goes into the model: the formatted prompt, its token ids and how it was built."""

    prompt: str
    ids: list[int]
    mode: str
    notes: list[str]


class GenerationService:
    """Shared by the UI and the API; one per app (holds the precision decisions)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.precision = PrecisionSelector(ctx.manager, precision_cache_file(ctx.config.cache_dir))

    def engine(self, ref: str, precision: str = "auto", progress: ProgressFn | None = None) -> GenerationEngine:
        loaded, used = self.precision.load(ref or DEFAULT_MODEL, precision, progress)
        if loaded.kind != "causal-lm":
            raise InputError(f"'{ref}' is not a causal language model.")
        return GenerationEngine(loaded, used)

    @staticmethod
    def prepare(
        engine: GenerationEngine,
        text: str,
        mode: str = "auto",
        system: str = "",
        history: list[dict[str, str]] | None = None,
    ) -> PreparedPrompt:
        """Format ``text`` as a chat turn (after ``history``, with ``system``) or as a raw completion prompt."""
        text = text or ""
        used = engine.resolve_mode(mode)
        if used == "completion":
            if not text.strip():
                raise InputError("Type a prompt first.")
            return PreparedPrompt(text, engine.encode(text, chat=False), used, [])
        if not text.strip():
            raise InputError("Type a message first.")
        messages = [{"role": "system", "content": system}] if system.strip() else []
        messages += [m for m in (history or [])[-MAX_HISTORY_MESSAGES:] if m.get("role") in ("user", "assistant")]
        messages.append({"role": "user", "content": text})
        prompt, ids, notes = engine.fit_chat(messages)
        return PreparedPrompt(prompt, ids, used, notes)

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
        """Load (if needed), format and stream one answer."""
        settings = settings.validated()
        engine = self.engine(ref, settings.precision, progress)
        prepared = self.prepare(engine, text, settings.mode, system, history)
        yield from engine.stream(prepared.ids, settings, stop_event, prepared.prompt, prepared.notes, prepared.mode)

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
        engine = self.engine(ref, settings.precision)
        prepared = self.prepare(engine, text, settings.mode, system)
        return NextTokenTask(engine.loaded, k=max(1, min(k, 100)))(prepared.ids), prepared
