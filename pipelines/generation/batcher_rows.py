"""One request of the decode batcher: its prompt, its own sampling (seeded generator), stop conditions and stream.

A :class:`BatchRequest` is what :class:`~pipelines.generation.batcher.DecodeBatcher` steps together with other
requests on the same model; every request keeps its own settings, so greedy and sampled requests, different
seeds, stop strings and token budgets share one forward pass per step without changing each other's output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from pipelines.generation.streaming import QueueStreamer, TokenEvent


class RowSampler:
    """Chooses a request's next token from its logits as ``model.generate`` would with the same settings.

    The processors are those ``generate`` builds for these knobs, in its order (repetition penalty, then
    temperature, top-k, top-p when sampling); sampling draws from the request's own ``torch.Generator``, so a
    seed gives the same answer whether the request ran alone or beside others.
    """

    def __init__(self, config: Any, seed: int, device: torch.device) -> None:
        self.do_sample = bool(getattr(config, "do_sample", False))
        processors = LogitsProcessorList()
        penalty = getattr(config, "repetition_penalty", None)
        if penalty is not None and penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(penalty=float(penalty)))
        if self.do_sample:
            temperature, top_k, top_p = (getattr(config, name, None) for name in ("temperature", "top_k", "top_p"))
            if temperature is not None and temperature != 1.0:
                processors.append(TemperatureLogitsWarper(float(temperature)))
            if top_k is not None and top_k != 0:
                processors.append(TopKLogitsWarper(top_k=int(top_k), min_tokens_to_keep=1))
            if top_p is not None and top_p < 1.0:
                processors.append(TopPLogitsWarper(top_p=float(top_p), min_tokens_to_keep=1))
        self.processors = processors
        self.generator: torch.Generator | None = None
        if self.do_sample:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(int(seed))

    @property
    def plain_greedy(self) -> bool:
        """Greedy with no processor: the batch's argmax is this request's token."""
        return not self.do_sample and not self.processors

    def choose(self, ids: torch.Tensor, logits: torch.Tensor) -> int:
        """The next token after ``ids`` (1 x n, prompt and answer so far) given float32 ``logits`` (1 x vocab)."""
        scores = self.processors(ids, logits) if self.processors else logits
        if not self.do_sample:
            return int(torch.argmax(scores, dim=-1)[0])
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, num_samples=1, generator=self.generator)[0, 0])


@dataclass(eq=False)
class BatchRequest:
    """A generation waiting for, or taking part in, batched decoding steps.

    ``events`` end it at the next step (the Stop button, a closed client); tokens, the end and errors go to
    ``streamer``'s queue, which :meth:`GenerationEngine._consume` reads. ``finished`` is set once the batch has
    let go of it. ``started[0]`` is when its prompt went into the model (time to first token counts from it).
    """

    model: Any
    tokenizer: Any
    prompt_ids: list[int]
    max_new: int
    sampler: RowSampler
    eos: frozenset[int]
    stops: tuple[str, ...] = ()
    events: tuple[threading.Event, ...] = ()
    streamer: QueueStreamer = field(default_factory=lambda: QueueStreamer(None))
    started: list[float] = field(default_factory=lambda: [0.0])
    generated: list[int] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)
    done: bool = False

    @property
    def stopped(self) -> bool:
        """True once one of its stop events is set."""
        return any(event.is_set() for event in self.events)

    def ids_tensor(self, device: torch.device) -> torch.Tensor:
        """Prompt and answer so far as a 1 x n tensor (what the repetition penalty looks at)."""
        return torch.tensor([self.prompt_ids + self.generated], dtype=torch.long, device=device)

    def accept(self, token_id: int, prob: float, top_ids: list[int], top_probs: list[float]) -> None:
        """Stream one token and decide whether the request is complete (end token, stop string, budget)."""
        self.generated.append(token_id)
        self.streamer.queue.put(TokenEvent(token_id, prob, top_ids, top_probs, time.perf_counter()))
        if token_id in self.eos or len(self.generated) >= self.max_new or self._hit_stop_string():
            self.done = True

    def _hit_stop_string(self) -> bool:
        """Whether the last few generated tokens contain a stop string (as ``StopOnStrings`` checks it)."""
        if not self.stops:
            return False
        window = max(len(s) for s in self.stops) + 4
        text = self.tokenizer.decode(self.generated[-window:], skip_special_tokens=True)
        return any(s in text for s in self.stops)

    def close(self, error: BaseException | None = None) -> None:
        """End the request's stream (with ``error`` when it failed) and let its consumer go on."""
        if error is not None:
            self.streamer.fail(error)
        else:
            self.streamer.end()
        self.done = True
        self.finished.set()


def eos_set(eos: Any) -> frozenset[int]:
    """The end-of-text ids of a generation config's ``eos_token_id`` (one id, a list of ids, or None)."""
    return frozenset(i for i in (eos if isinstance(eos, list) else [eos]) if i is not None)


@contextmanager
def in_batch(batcher: Any, request: BatchRequest) -> Iterator[BatchRequest]:
    """``request`` submitted to ``batcher`` for the ``with`` block; leaving it (the answer read, an error, the
    consumer gone) ends the row at the next step and waits until the batch has let go of it."""
    halt = threading.Event()  # the caller's own stop events stay as they were
    request.events = (*request.events, halt)
    batcher.submit(request)
    try:
        yield request
    finally:
        halt.set()
        batcher.cancel(request)
        request.finished.wait(timeout=30)
