"""The workbench as an OpenAI-compatible server: model list, and generation through the one generation service.

Every request runs in the context's compute thread (``ctx.compute``, one generation at a time), like the UI's;
at most ``AppConfig.queue_size`` requests wait for it, more are refused with 429 (:class:`BusyError`).
``run:<id>`` models are fine-tuned adapters loaded through the one model manager (``ctx.manager``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from pipelines.context import AppContext
from pipelines.engines.config import EnginesConfig
from pipelines.engines.openai_wire import (
    FINISH,
    ApiRequest,
    chat_logprobs,
    completion_logprobs,
    full_response,
    new_id,
    parse_request,
    usage,
    visible_tokens,
)
from pipelines.errors import BusyError, ModelLoadError
from pipelines.generation.results import GenerationResult
from pipelines.generation.service import GenerationService
from pipelines.generation.settings import Mode
from pipelines.models.embedded import EMBEDDED

CAUSAL = "causal-lm"
OWNER = "lm-workbench"


class OpenAIService:
    """The ``/v1`` endpoints as plain methods (the FastAPI router in ``components.openai_api`` only adapts)."""

    def __init__(self, ctx: AppContext, config: EnginesConfig | None = None,
                 service: GenerationService | None = None) -> None:
        self.ctx = ctx
        self.config = config or EnginesConfig.of(ctx.config)
        self.service = service or ctx.generation
        self.slots = threading.BoundedSemaphore(max(1, ctx.config.queue_size))

    # ---- models -------------------------------------------------------------------------------------------------
    def model_ids(self, user: str | None = None) -> list[tuple[str, int]]:
        """(id, created) of the embedded causal LMs and every usable fine-tuned causal-LM run (with login,
        ``user``'s runs only; an admin's: all)."""
        ids = [(m.name, 0) for m in EMBEDDED.values() if m.default_kind == CAUSAL and m.fmt != "spacy"]
        for run in self.ctx.runs.list(user=user):
            if run.kind == CAUSAL:
                ids.append((run.reference, _timestamp(run.created)))
        return ids

    def models(self, user: str | None = None) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": i, "object": "model", "created": c, "owned_by": OWNER}
                                           for i, c in self.model_ids(user)]}

    def check_model(self, model: str, user: str | None = None) -> str:
        """``model``, or :class:`ModelLoadError`: unknown, or (with login) another user's run."""
        if model not in {i for i, _ in self.model_ids(user)}:
            if model.startswith("run:") and user is not None and model in {i for i, _ in self.model_ids()}:
                raise ModelLoadError("users.error.not_yours", run=model[4:])
            raise ModelLoadError("engines.error.unknown_model", model=model[:200])
        return model

    # ---- generation ---------------------------------------------------------------------------------------------
    def parse(self, body: Any, mode: str, user: str | None = None) -> ApiRequest:
        request = parse_request(body, mode, self.ctx.limits.max_new_tokens, self.config.default_max_tokens)
        self.check_model(request.model, user)
        # the prompt cap before a queue slot or a model load is spent on a request that is refused anyway
        self.ctx.limits.refuse("".join([request.system, request.text, *(m["content"] for m in request.history)]))
        return request

    def _stream(self, request: ApiRequest, stop_event: threading.Event) -> Iterator[GenerationResult]:
        if not self.slots.acquire(blocking=False):
            raise BusyError("engines.error.queue_full")
        try:
            yield from self.service.stream(request.model, request.text, request.settings, system=request.system,
                                           history=request.history, stop_event=stop_event)
        finally:
            self.slots.release()

    def complete(self, request: ApiRequest) -> dict[str, Any]:
        """The whole answer as one response dict."""
        result = GenerationResult()
        for result in self._stream(request, threading.Event()):  # noqa: B007 - the last snapshot is the answer
            pass
        return full_response(request, result)

    def first_and_rest(self, request: ApiRequest) -> tuple[GenerationResult | None, Iterator[dict[str, Any]]]:
        """Start a streamed answer: the first snapshot (errors in loading/formatting raise here, before any
        byte is sent, so they get a proper HTTP status) and an iterator of the chunk dicts."""
        stop_event = threading.Event()
        results = self._stream(request, stop_event)
        first = next(results, None)
        return first, self._chunks(request, first, results, stop_event)

    def _chunks(self, request: ApiRequest, first: GenerationResult | None, results: Iterator[GenerationResult],
                stop_event: threading.Event) -> Iterator[dict[str, Any]]:
        chunk_id, created = new_id(request.mode), int(time.time())
        emitter = DeltaEmitter(request)
        last = first
        try:
            if request.mode == Mode.CHAT:
                yield _chunk(request, chunk_id, created, {"delta": {"role": "assistant", "content": ""}})
            for result in _chain(first, results):
                last = result
                piece = emitter.delta(result)
                if piece is not None:
                    yield _chunk(request, chunk_id, created, piece)
        finally:
            stop_event.set()
            results.close()
        if last is not None:
            yield _chunk(request, chunk_id, created, {**emitter.empty(), "finish_reason": FINISH.get(last.stop_reason,
                                                                                                      "stop")})
            if request.include_usage:
                yield {**_chunk(request, chunk_id, created, None), "usage": usage(last)}


def _chain(first: GenerationResult | None, rest: Iterator[GenerationResult]) -> Iterator[GenerationResult]:
    if first is not None:
        yield first
    yield from rest


def _chunk(request: ApiRequest, chunk_id: str, created: int, choice: dict[str, Any] | None) -> dict[str, Any]:
    chat = request.mode == Mode.CHAT
    choices = [] if choice is None else [{"index": 0, "logprobs": None, "finish_reason": None, **choice}]
    return {"id": chunk_id, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
            "model": request.model, "choices": choices, "system_fingerprint": None}


class DeltaEmitter:
    """Turns growing snapshots into deltas. With stop strings, text that may be the start of a stop string is held
    back until it is known not to be one, so a streamed answer never shows a stop string or what follows it."""

    def __init__(self, request: ApiRequest) -> None:
        self.request = request
        self.sent_chars = 0
        self.sent_tokens = 0
        self.hold = max((len(s) for s in request.settings.stop_strings), default=1) - 1

    def empty(self) -> dict[str, Any]:
        return {"delta": {}} if self.request.mode == Mode.CHAT else {"text": ""}

    def _safe_length(self, result: GenerationResult) -> int:
        if result.done or not self.request.settings.stop_strings:
            return len(result.text)
        hits = [i for i in (result.text.find(s) for s in self.request.settings.stop_strings) if i >= 0]
        return min(hits) if hits else max(0, len(result.text) - self.hold)

    def delta(self, result: GenerationResult) -> dict[str, Any] | None:
        """The choice of the next chunk, or None when there is nothing new to send."""
        safe = max(self.sent_chars, self._safe_length(result))
        text = result.text[self.sent_chars:safe]
        tokens, length = [], 0
        shown = visible_tokens(result.tokens)
        consumed = self.sent_tokens
        budget = safe - self._chars_of(shown[:self.sent_tokens])
        for token in shown[self.sent_tokens:]:
            if length + len(token.text) > budget or (not token.text and not result.done):
                break
            tokens.append(token)
            length += len(token.text)
            consumed += 1
        if not text and not tokens:
            return None
        offset = self.sent_chars
        self.sent_chars, self.sent_tokens = safe, consumed
        if self.request.mode == Mode.CHAT:
            choice: dict[str, Any] = {"delta": {"content": text}}
            if self.request.logprobs:
                choice["logprobs"] = chat_logprobs(tokens, self.request.top_logprobs)
        else:
            choice = {"text": text}
            if self.request.logprobs:
                choice["logprobs"] = completion_logprobs(tokens, self.request.top_logprobs, offset)
        return choice

    @staticmethod
    def _chars_of(tokens: list[Any]) -> int:
        return sum(len(t.text) for t in tokens)


def _timestamp(created: str) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(created).timestamp())
    except (TypeError, ValueError):
        return 0
