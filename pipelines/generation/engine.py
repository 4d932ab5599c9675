"""Streaming text generation with token-level probabilities, on top of ``model.generate``.

Generation runs in a worker thread; the caller iterates :meth:`GenerationEngine.stream` and gets a
:class:`GenerationResult` snapshot per token. A stop event ends it at the next decoding step.
"""

from __future__ import annotations

import concurrent.futures
import copy
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationConfig
from transformers.generation.stopping_criteria import StoppingCriteriaList

from pipelines.errors import InputError
from pipelines.generation.settings import MAX_NEW_TOKENS_CAP, MAX_PROMPT_CHARS, GenerationSettings
from pipelines.generation.streaming import (
    LogitsRecorder,
    PieceDecoder,
    QueueStreamer,
    StopOnEvent,
    StopOnStrings,
    TokenInfo,
)
from pipelines.generation.threads import COMPUTE, TUNER, run_in_compute
from pipelines.models.manager import LoadedModel
from pipelines.tasks.base import Task

# One generation at a time in this process: the forward hook and the global RNG seed are per process,
# and on a CPU two generations only slow each other down.
GENERATION_LOCK = threading.Lock()
FALLBACK_CONTEXT = 2048


@dataclass
class GenerationResult:
    """A snapshot of one generation (``done`` marks the final one)."""

    text: str = ""
    tokens: list[TokenInfo] = field(default_factory=list)
    prompt: str = ""
    prompt_tokens: int = 0
    max_new_tokens: int = 0
    ttft_s: float | None = None
    decode_tokens_per_s: float | None = None
    total_s: float = 0.0
    device: str = "cpu"
    precision: str = ""
    seed: int = 0
    stop_reason: str = ""
    notes: list[str] = field(default_factory=list)
    mode: str = ""  # chat or completion
    done: bool = False

    @property
    def new_tokens(self) -> int:
        return len(self.tokens)

    def stats(self) -> dict[str, Any]:
        """Plain numbers for the stats panel and the API."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "max_new_tokens": self.max_new_tokens,
            "time_to_first_token_s": None if self.ttft_s is None else round(self.ttft_s, 3),
            "tokens_per_s": None if self.decode_tokens_per_s is None else round(self.decode_tokens_per_s, 2),
            "total_s": round(self.total_s, 3),
            "device": self.device,
            "precision": self.precision,
            "seed": self.seed,
            "stop_reason": self.stop_reason,
            "mode": self.mode,
            "notes": list(self.notes),
        }


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

    def __init__(self, loaded: LoadedModel, precision: str = "") -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.precision = precision or loaded.key.dtype
        self.context = context_length(self.model, self.tokenizer)

    # ---- prompts ----------------------------------------------------
    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def resolve_mode(self, mode: str) -> str:
        """``auto`` means chat when the tokenizer has a chat template, else completion."""
        if mode == "chat" and not self.has_chat_template:
            raise InputError("This model has no chat template; use completion mode.")
        if mode == "auto":
            return "chat" if self.has_chat_template else "completion"
        return mode

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The chat template applied to ``messages``, ending with the assistant's turn."""
        clean = [{"role": m["role"], "content": str(m["content"])} for m in messages if str(m.get("content", ""))]
        if not clean or clean[-1]["role"] != "user":
            raise InputError("Type a message first.")
        return self.tokenizer.apply_chat_template(clean, add_generation_prompt=True, tokenize=False)

    def encode(self, prompt: str, chat: bool) -> list[int]:
        """Token ids of ``prompt`` (the chat template already holds its special tokens)."""
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InputError(f"The prompt is longer than {MAX_PROMPT_CHARS} characters; shorten it.")
        return list(self.tokenizer(prompt, add_special_tokens=not chat).input_ids)

    def fit_chat(self, messages: list[dict[str, str]], reserve: int = 16) -> tuple[str, list[int], list[str]]:
        """Format and encode a conversation, dropping the oldest turns until it fits the context."""
        notes: list[str] = []
        msgs = list(messages)
        while True:
            prompt = self.chat_prompt(msgs)
            ids = self.encode(prompt, chat=True)
            if len(ids) + reserve <= self.context:
                return prompt, ids, notes
            first = next((i for i, m in enumerate(msgs[:-1]) if m["role"] != "system"), None)
            if first is None:
                raise InputError(f"The message is too long for this model's {self.context}-token context.")
            del msgs[first]
            notes = [f"Dropped the oldest turns to fit the {self.context}-token context."]

    def cap_new_tokens(self, requested: int, prompt_tokens: int) -> tuple[int, list[str]]:
        """``requested`` capped by the hard cap and what the context leaves after the prompt."""
        room = self.context - prompt_tokens
        if room < 1:
            raise InputError(f"The prompt ({prompt_tokens} tokens) fills this model's {self.context}-token context.")
        capped = max(1, min(requested, MAX_NEW_TOKENS_CAP, room))
        notes = [] if capped == requested else [f"max new tokens capped at {capped} (context {self.context})."]
        return capped, notes

    # ---- generation -------------------------------------------------
    def _generation_config(self, settings: GenerationSettings, max_new: int) -> GenerationConfig:
        config = copy_generation_config(self.model)
        config.update(**settings.generation_config_overrides(max_new))
        if config.pad_token_id is None:
            config.pad_token_id = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id
        return config

    def stream(
        self,
        prompt_ids: list[int],
        settings: GenerationSettings,
        stop_event: threading.Event | None = None,
        prompt: str = "",
        notes: list[str] | None = None,
        mode: str = "",
    ) -> Iterator[GenerationResult]:
        """Yield a snapshot after every token; the last one has ``done=True`` and the stats."""
        settings = settings.validated()
        stop_event = stop_event or threading.Event()
        max_new, cap_notes = self.cap_new_tokens(settings.max_new_tokens, len(prompt_ids))
        seed = settings.seed if settings.seed >= 0 else random.randrange(2**31)
        result = GenerationResult(
            prompt=prompt, prompt_tokens=len(prompt_ids), max_new_tokens=max_new, device=self.loaded.device,
            precision=self.precision, seed=seed, notes=[*(notes or []), *cap_notes], mode=mode,
        )
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

        def work() -> None:
            with GENERATION_LOCK:
                handle = recorder.attach(self.model)
                timer = recorder.inner(self.model).register_forward_hook(TUNER.tick)
                try:
                    TUNER.apply()
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

        worker = COMPUTE.submit(work)
        try:
            yield from self._consume(streamer, result, settings, stop_event, started)
        finally:
            halt.set()  # a closed consumer (client gone, Stop pressed) ends the worker too
            concurrent.futures.wait([worker], timeout=30)

    def _consume(
        self,
        streamer: QueueStreamer,
        result: GenerationResult,
        settings: GenerationSettings,
        stop_event: threading.Event,
        started: list[float],
    ) -> Iterator[GenerationResult]:
        decoder = PieceDecoder(self.tokenizer)
        eos = _eos_ids(self.model, self.tokenizer)
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
            yield result
        result.total_s = time.perf_counter() - started[0] if started[0] else 0.0
        n = len(result.tokens)
        if first_at is not None and last_at is not None and n > 1 and last_at > first_at:
            result.decode_tokens_per_s = (n - 1) / (last_at - first_at)
        result.stop_reason = self._stop_reason(result, settings, stop_event, eos)
        if result.stop_reason == "stop_string":
            _cut_at_stop(result, settings.stop_strings)
        result.done = True
        yield result

    @staticmethod
    def _stop_reason(result: GenerationResult, settings: GenerationSettings, stop: threading.Event, eos: set) -> str:
        if result.tokens and result.tokens[-1].id in eos:
            return "eos"
        if settings.stop_strings and any(s in result.text for s in settings.stop_strings):
            return "stop_string"
        if stop.is_set():
            return "stopped"
        return "length"

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

    def __init__(self, loaded: LoadedModel, k: int = 20) -> None:
        super().__init__(loaded)
        self.k = k

    def preprocess(self, inputs: list[int]) -> torch.Tensor:
        if not inputs:
            raise InputError("Type a prompt first.")
        return torch.tensor([inputs], dtype=torch.long, device=_model_device(self.model))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        def work() -> torch.Tensor:
            with GENERATION_LOCK, torch.inference_mode():
                return torch.softmax(self.model(input_ids=batch).logits[0, -1].float(), dim=-1)

        return run_in_compute(work)

    def postprocess(self, outputs: torch.Tensor) -> list[dict[str, Any]]:
        top = torch.topk(outputs, min(self.k, outputs.shape[-1]))
        decoder = PieceDecoder(self.tokenizer)
        return [
            {"token": decoder.token_text(i), "prob": float(p), "id": int(i)}
            for i, p in zip(top.indices.tolist(), top.values.tolist(), strict=True)
        ]
