"""Streaming text generation with token-level probabilities, on top of ``model.generate``.

Generation runs in a worker thread; the caller iterates :meth:`GenerationEngine.stream` and gets a
:class:`GenerationResult` snapshot per token. A stop event ends it at the next decoding step. An engine made by the
service carries the app's decode batcher (``ctx.decode_batcher``): its generation is then one row of a batch that
shares each forward pass with concurrent generations on the same model (:mod:`pipelines.generation.batcher`);
without it (or with ``LMW_BATCHING=0``) it runs alone through ``model.generate``.
"""

from __future__ import annotations

import concurrent.futures
import copy
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch
from transformers import GenerationConfig
from transformers.generation.stopping_criteria import StoppingCriteriaList

from pipelines.errors import InputError
from pipelines.generation.batcher import DecodeBatcher
from pipelines.generation.batcher_rows import BatchRequest, RowSampler, eos_set, in_batch
from pipelines.generation.results import GenerationResult
from pipelines.generation.settings import MAX_NEW_TOKENS_CAP, GenerationSettings, Mode, StopReason
from pipelines.generation.streaming import (
    LogitsRecorder,
    PieceDecoder,
    QueueStreamer,
    StopOnEvent,
    StopOnStrings,
    TokenInfo,
)
from pipelines.generation.threads import ComputeThread
from pipelines.messages import Msg
from pipelines.models.manager import LoadedModel
from pipelines.tasks.base import Task

FALLBACK_CONTEXT = 2048
TEMPLATE_OVERHEAD = 8  # tokens a chat template adds around one message (an estimate; the real prompt is checked)
__all__ = ["GenerationEngine", "GenerationResult", "NextTokenTask", "context_length"]


def context_length(model: Any, tokenizer: Any) -> int:
    """The model's context window (max positions), with a sane fallback."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else FALLBACK_CONTEXT


class GenerationEngine:
    """Prompt formatting, streaming generation and next-token probabilities for one loaded causal LM."""

    name = "transformers"

    def __init__(self, loaded: LoadedModel, precision: str = "", compute: ComputeThread | None = None) -> None:
        self.notes: list[Msg] = []  # why this engine answers, when the user asked for another one
        self.loaded = loaded
        self.compute = compute or ComputeThread()
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.precision = precision or loaded.key.dtype
        self.context = context_length(self.model, self.tokenizer)
        self.batcher: DecodeBatcher | None = None  # set by the service: concurrent generations share decoding steps

    # ---- prompts ----------------------------------------------------
    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def resolve_mode(self, mode: str) -> str:
        """``auto`` means chat when the tokenizer has a chat template, else completion."""
        if mode == Mode.CHAT and not self.has_chat_template:
            raise InputError("generate.error.no_chat_template")
        if mode == Mode.AUTO:
            return Mode.CHAT if self.has_chat_template else Mode.COMPLETION
        return Mode(mode)

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The chat template applied to ``messages``, ending with the assistant's turn."""
        clean = [{"role": m["role"], "content": str(m["content"])} for m in messages if str(m.get("content", ""))]
        if not clean or clean[-1]["role"] != "user":
            raise InputError("generate.error.empty_message")
        return self.tokenizer.apply_chat_template(clean, add_generation_prompt=True, tokenize=False)

    def encode(self, prompt: str, chat: bool) -> list[int]:
        """Token ids of ``prompt`` (the chat template already holds its special tokens)."""
        return list(self.tokenizer(prompt, add_special_tokens=not chat).input_ids)

    def fit_chat(self, messages: list[dict[str, str]], reserve: int = 16) -> tuple[str, list[int], int]:
        """Format and encode a conversation that leaves ``reserve`` tokens of the context for the answer.

        The system prompt and the newest message always stay; the oldest turns are dropped, counted in tokens,
        until the conversation fits. Returns (prompt, ids, number of dropped user turns).
        """
        system = [m for m in messages[:1] if m["role"] == "system"]
        turns = list(messages[len(system):])
        budget = self.context - max(0, min(reserve, self.context // 2))
        sizes = [self._estimate(m) for m in turns]
        total, start = sum(self._estimate(m) for m in system) + sum(sizes), 0
        while start < len(turns) - 1 and total > budget:
            total -= sizes[start]
            start += 1
        start = self._turn_start(turns, start)
        while True:
            prompt = self.chat_prompt(system + turns[start:])
            ids = self.encode(prompt, chat=True)
            if len(ids) <= budget:
                return prompt, ids, sum(m["role"] == "user" for m in turns[:start])
            if start >= len(turns) - 1:
                raise InputError("generate.error.message_too_long", context=self.context)
            start = self._turn_start(turns, start + 1)

    def _estimate(self, message: dict[str, str]) -> int:
        ids = self.tokenizer(str(message.get("content", "")), add_special_tokens=False).input_ids
        return len(ids) + TEMPLATE_OVERHEAD

    @staticmethod
    def _turn_start(turns: list[dict[str, str]], start: int) -> int:
        """The first index at or after ``start`` where a user turn begins (never past the newest message)."""
        while start < len(turns) - 1 and turns[start]["role"] != "user":
            start += 1
        return start

    def cap_new_tokens(self, requested: int, prompt_tokens: int) -> tuple[int, list[Msg]]:
        """``requested`` capped by the hard cap and what the context leaves after the prompt."""
        room = self.context - prompt_tokens
        if room < 1:
            raise InputError("generate.error.context_full", tokens=prompt_tokens, context=self.context)
        capped = max(1, min(requested, MAX_NEW_TOKENS_CAP, room))
        notes = [] if capped == requested else [Msg.of("generate.note.capped", tokens=capped, context=self.context)]
        return capped, notes

    # ---- generation -------------------------------------------------
    def _generation_config(self, settings: GenerationSettings, max_new: int) -> GenerationConfig:
        config = copy_generation_config(self.model)
        config.update(**settings.generation_config_overrides(max_new))
        if config.pad_token_id is None:
            config.pad_token_id = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id
        return config

    def begin(self, prompt_ids: list[int], settings: GenerationSettings, stop_event: threading.Event | None,
              prompt: str, notes: list[Msg] | None, mode: str,
              dropped_turns: int) -> tuple[GenerationSettings, GenerationResult, threading.Event]:
        """(settings resolved for the mode, the first empty snapshot, the stop event) of a new generation."""
        settings = settings.validated()
        used_mode = mode or (settings.mode if settings.mode != Mode.AUTO else self.resolve_mode(Mode.AUTO))
        settings = replace(settings, mode=used_mode).for_mode(used_mode)
        max_new, cap_notes = self.cap_new_tokens(settings.max_new_tokens, len(prompt_ids))
        seed = settings.seed if settings.seed >= 0 else random.randrange(2**31)
        result = GenerationResult(
            prompt=prompt, prompt_tokens=len(prompt_ids), max_new_tokens=max_new, device=self.loaded.device,
            precision=self.precision, engine=self.name, seed=seed, notes=[*(notes or []), *cap_notes],
            mode=str(mode), dropped_turns=dropped_turns, sampling=settings.sampling_summary(),
        )
        return settings, result, stop_event or threading.Event()

    def stream(
        self,
        prompt_ids: list[int],
        settings: GenerationSettings,
        stop_event: threading.Event | None = None,
        prompt: str = "",
        notes: list[Msg] | None = None,
        mode: str = "",
        dropped_turns: int = 0,
    ) -> Iterator[GenerationResult]:
        """Yield a snapshot after every token; the last one has ``done=True`` and the stats."""
        settings, result, stop_event = self.begin(prompt_ids, settings, stop_event, prompt, notes, mode,
                                                  dropped_turns)
        if self.batcher is not None and self.batcher.enabled:
            yield from self._stream_batched(prompt_ids, settings, stop_event, result)
            return
        max_new, seed = result.max_new_tokens, result.seed
        recorder = LogitsRecorder()
        streamer = QueueStreamer(recorder)
        halt = threading.Event()  # ends the worker when the consumer goes away; the caller's event stays as it was
        criteria = StoppingCriteriaList([StopOnEvent(stop_event, halt)])
        if settings.stop_strings:
            criteria.append(StopOnStrings(self.tokenizer, settings.stop_strings, len(prompt_ids)))
        device = _model_device(self.model)
        input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
        gen_config = self._generation_config(settings, max_new)
        started = [0.0]

        compute = self.compute

        def work() -> None:
            with compute.lock:
                handle = recorder.attach(self.model)
                timer = recorder.inner(self.model).register_forward_hook(compute.tuner.tick)
                try:
                    torch.manual_seed(seed)
                    started[0] = time.perf_counter()
                    with torch.inference_mode():
                        self.model.generate(
                            input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                            generation_config=gen_config, stopping_criteria=criteria, streamer=streamer,
                        )
                except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    streamer.fail(exc)
                    return
                finally:
                    handle.remove()
                    timer.remove()
            streamer.end()

        worker = compute.submit(work)
        try:
            yield from self._consume(streamer, result, settings, stop_event, started)
        finally:
            halt.set()  # a closed consumer (client gone, Stop pressed) ends the worker too
            concurrent.futures.wait([worker], timeout=30)

    def _stream_batched(self, prompt_ids: list[int], settings: GenerationSettings, stop_event: threading.Event,
                        result: GenerationResult) -> Iterator[GenerationResult]:
        """The generation as one row of the app's decode batcher (it shares decoding steps with concurrent ones)."""
        assert self.batcher is not None
        config = self._generation_config(settings, result.max_new_tokens)
        eos = config.eos_token_id if config.eos_token_id is not None else self.tokenizer.eos_token_id
        request = BatchRequest(
            model=self.model, tokenizer=self.tokenizer, prompt_ids=list(prompt_ids), max_new=result.max_new_tokens,
            sampler=RowSampler(config, result.seed, _model_device(self.model)), eos=eos_set(eos),
            stops=tuple(settings.stop_strings), events=(stop_event,),
        )
        with in_batch(self.batcher, request):  # a consumer that goes away ends the row
            yield from self._consume(request.streamer, result, settings, stop_event, request.started)

    def _consume(
        self,
        streamer: QueueStreamer,
        result: GenerationResult,
        settings: GenerationSettings,
        stop_event: threading.Event,
        started: list[float],
    ) -> Iterator[GenerationResult]:
        decoder = PieceDecoder(self.tokenizer)
        eos = self.eos_ids()
        first_at = last_at = None
        while True:
            item = streamer.queue.get()
            if item is QueueStreamer.END:
                break
            if isinstance(item, BaseException):
                raise item
            first_at = first_at or item.at
            last_at = item.at
            piece, special = decoder.add(item.token_id)
            top = [(decoder.token_text(i), p) for i, p in zip(item.top_ids, item.top_probs, strict=True)]
            label = decoder.token_text(item.token_id) if special else ""
            result.tokens.append(TokenInfo(item.token_id, piece, item.prob, top, special, label))
            result.text = decoder.text
            result.ttft_s = first_at - started[0]
            self._timings(result, started[0], first_at, last_at, item.at)
            yield result
        self._timings(result, started[0], first_at, last_at, time.perf_counter())
        result.stop_reason = self._stop_reason(result, settings, stop_event, eos)
        if result.stop_reason == StopReason.STOP_STRING:
            _cut_at_stop(result, settings.stop_strings)
        result.done = True
        yield result

    @staticmethod
    def _timings(result: GenerationResult, started: float, first_at: float | None, last_at: float | None,
                 now: float) -> None:
        """Total time and decoding speed so far (kept current, so a stopped generation reports them too)."""
        result.total_s = now - started if started else 0.0
        n = len(result.tokens)
        if first_at is not None and last_at is not None and n > 1 and last_at > first_at:
            result.decode_tokens_per_s = (n - 1) / (last_at - first_at)

    @staticmethod
    def _stop_reason(result: GenerationResult, settings: GenerationSettings, stop: threading.Event,
                     eos: set) -> StopReason:
        if result.tokens and result.tokens[-1].id in eos:
            return StopReason.EOS
        if settings.stop_strings and any(s in result.text for s in settings.stop_strings):
            return StopReason.STOP_STRING
        if stop.is_set():
            return StopReason.STOPPED
        return StopReason.LENGTH

    def eos_ids(self) -> set[int]:
        """The token ids that end a generation."""
        return _eos_ids(self.model, self.tokenizer)

    def next_tokens(self, prompt_ids: list[int], k: int = 20) -> list[dict[str, Any]]:
        """The ``k`` most likely next tokens after ``prompt_ids`` as ``[{"token", "prob", "id"}]``."""
        return NextTokenTask(self.loaded, k=k, compute=self.compute)(prompt_ids)

    def generate(self, prompt_ids: list[int], settings: GenerationSettings, **kwargs: Any) -> GenerationResult:
        """Run to the end and return the final result."""
        result = GenerationResult()
        for snapshot in self.stream(prompt_ids, settings, **kwargs):
            result = snapshot
        return result


def _cut_at_stop(result: GenerationResult, stops: list[str]) -> None:
    """Cut the text before the earliest stop string and drop the tokens that start after the cut."""
    cut = min(i for i in (result.text.find(s) for s in stops) if i >= 0)
    result.text = result.text[:cut]
    kept, length = [], 0
    for token in result.tokens:
        if length >= cut and token.text:
            break
        kept.append(token)
        length += len(token.text)
    result.tokens = kept


def copy_generation_config(model: Any) -> GenerationConfig:
    config = getattr(model, "generation_config", None)
    return copy.deepcopy(config) if config is not None else GenerationConfig()


def _model_device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = ids if isinstance(ids, list) else [ids]
    return {i for i in [*ids, tokenizer.eos_token_id] if i is not None}


class NextTokenTask(Task[list[int], list[dict[str, Any]]]):
    """The ``k`` most likely next tokens after a prompt, as ``[{"token", "prob", "id"}]``."""

    def __init__(self, loaded: LoadedModel, k: int = 20, compute: ComputeThread | None = None) -> None:
        super().__init__(loaded)
        self.k = k
        self.compute = compute or ComputeThread()

    def preprocess(self, inputs: list[int]) -> torch.Tensor:
        if not inputs:
            raise InputError("generate.error.empty_prompt")
        return torch.tensor([inputs], dtype=torch.long, device=_model_device(self.model))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        def work() -> torch.Tensor:
            with torch.inference_mode():
                return torch.softmax(self.model(input_ids=batch).logits[0, -1].float(), dim=-1)

        return self.compute.run(work)

    def postprocess(self, outputs: torch.Tensor) -> list[dict[str, Any]]:
        top = torch.topk(outputs, min(self.k, outputs.shape[-1]))
        decoder = PieceDecoder(self.tokenizer)
        return [
            {"token": decoder.token_text(i), "prob": float(p), "id": int(i)}
            for i, p in zip(top.indices.tolist(), top.values.tolist(), strict=True)
        ]
