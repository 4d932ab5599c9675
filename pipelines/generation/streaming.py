"""Pieces that run inside ``model.generate``: a streamer that pairs every token with its probabilities,
a logits recorder (forward hook), and stopping criteria for a stop event and for stop strings."""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch
from transformers.generation.stopping_criteria import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from pipelines.generation.results import TokenInfo

TOP_K_ALTERNATIVES = 5
__all__ = ["LogitsRecorder", "PieceDecoder", "QueueStreamer", "StopOnEvent", "StopOnStrings", "TokenEvent",
           "TokenInfo"]


@dataclass
class TokenEvent:
    """One generated token as it leaves the worker thread."""

    token_id: int
    prob: float
    top_ids: list[int]
    top_probs: list[float]
    at: float  # time.perf_counter() when the token was produced


class LogitsRecorder:
    """Forward hook on the causal LM: keeps the last position's next-token distribution of each forward pass.

    The distribution is the model's own (softmax of raw logits, temperature 1, before repetition penalty,
    top-k or top-p), so the token view shows how confident the model was, whatever the sampling settings.
    """

    def __init__(self, k: int = TOP_K_ALTERNATIVES) -> None:
        self.k = k
        self.probs: torch.Tensor | None = None
        self.top: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, _module: Any, _args: Any, output: Any) -> None:
        logits = output.logits if hasattr(output, "logits") else output[0]
        probs = torch.softmax(logits[0, -1].float(), dim=-1)
        self.probs = probs
        self.top = torch.topk(probs, min(self.k, probs.shape[-1]))

    @staticmethod
    def inner(model: Any) -> Any:
        """The innermost transformers model (PEFT wrappers forward to it)."""
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    def attach(self, model: Any) -> Any:
        """Register on the innermost transformers model; returns the handle."""
        return self.inner(model).register_forward_hook(self)


class QueueStreamer(BaseStreamer):
    """Receives token ids from ``generate`` and puts :class:`TokenEvent` objects on a queue."""

    END = object()

    def __init__(self, recorder: LogitsRecorder) -> None:
        self.recorder = recorder
        self.queue: queue.Queue[Any] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        token_id = int(value.reshape(-1)[0])
        probs, top = self.recorder.probs, self.recorder.top
        if probs is None or top is None:
            event = TokenEvent(token_id, float("nan"), [], [], time.perf_counter())
        else:
            event = TokenEvent(
                token_id, float(probs[token_id]), top.indices.tolist(), top.values.tolist(), time.perf_counter()
            )
        self.queue.put(event)

    def end(self) -> None:
        self.queue.put(self.END)

    def fail(self, exc: BaseException) -> None:
        self.queue.put(exc)


class StopOnEvent(StoppingCriteria):
    """Stops generation as soon as one of ``events`` is set (the Stop button, or a closed client)."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        stop = any(event.is_set() for event in self.events)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class StopOnStrings(StoppingCriteria):
    """Stops when the generated text contains one of ``stops``.

    transformers' ``StopStringCriteria`` precomputes tables over the whole vocabulary on every construction
    (measured ~0.3 s for SmolLM2's 49k vocabulary, added to the time to first token); decoding the last few
    generated tokens each step costs microseconds, so this small criterion is used instead.
    """

    def __init__(self, tokenizer: Any, stops: list[str], prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.stops = stops
        self.prompt_length = prompt_length
        self.window = max(len(s) for s in stops) + 4

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        tail = input_ids[0, self.prompt_length:][-self.window:]
        text = self.tokenizer.decode(tail, skip_special_tokens=True)
        hit = any(s in text for s in self.stops)
        return torch.full((input_ids.shape[0],), hit, dtype=torch.bool, device=input_ids.device)


class PieceDecoder:
    """Turns a growing list of token ids into per-token text pieces that add up to the decoded text.

    A token that ends inside a multi-byte character (common for Chinese with byte-level BPE) gets an empty
    piece; the token that completes the character carries it.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self.special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])

    def add(self, token_id: int) -> tuple[str, bool]:
        """Append a token; return (its text piece, whether it is a special token)."""
        self.ids.append(token_id)
        if token_id in self.special_ids:
            return "", True
        decoded = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if decoded.endswith("\ufffd"):
            return "", False
        common = len(os.path.commonprefix([self.text, decoded]))
        piece, self.text = decoded[common:], decoded
        return piece, False

    def token_text(self, token_id: int) -> str:
        """A readable text for a single token (alternatives); byte fragments fall back to the raw token."""
        text = self.tokenizer.decode([token_id])
        if not text or "\ufffd" in text:
            text = str(self.tokenizer.convert_ids_to_tokens(token_id))
        return text
