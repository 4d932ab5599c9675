"""The llama.cpp generation engine: the same interface as :class:`GenerationEngine`, in-process ``llama_cpp``.

Prompts are formatted and tokenised exactly as on the transformers path (the model's chat template through the
same Hugging Face tokenizer), so both engines start from the same ids. Decoding runs in the one compute thread
through llama.cpp's low-level API: one ``eval`` per token, the last position's logits read with
``llama_get_logits_ith`` (``logits_all=False``), the token chosen by :class:`~.llamacpp_sampling.Sampler`. A
prompt is evaluated whole every time (no prefix reuse: see :func:`eval_prompt`), so a request repeated gives
the same answer.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from pipelines.errors import InputError
from pipelines.generation.engine import GenerationEngine
from pipelines.generation.llamacpp_sampling import Pick, Sampler, softmax, top_k
from pipelines.generation.llamacpp_threads import tuner_of
from pipelines.generation.results import GenerationResult
from pipelines.generation.settings import GenerationSettings
from pipelines.generation.streaming import PieceDecoder, QueueStreamer, TokenEvent
from pipelines.generation.threads import ComputeThread
from pipelines.messages import Msg
from pipelines.models.manager import LoadedModel

ENGINE_NAME = "llama.cpp"


def last_logits(llm: Any) -> np.ndarray:
    """The next-token logits after the last evaluated token (a copy; llama.cpp reuses its buffer)."""
    import llama_cpp

    pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).copy()


def eval_prompt(llm: Any, ids: list[int]) -> None:
    """Evaluate the whole prompt ``ids`` from an empty KV cache.

    A cached prefix is not reused: evaluating the last token alone over a cached prefix gives logits that differ
    from the whole prompt's evaluation in the last bits, enough to flip a near-tie and make a greedy or seeded
    answer differ from the same request before (measured). A prompt of ~100 tokens costs ~0.1 s on 2 idle cores.
    """
    llm.n_tokens = 0  # eval() drops the cache past n_tokens before decoding
    llm.eval(ids)


def decode(llm: Any, prompt_ids: list[int], sampler: Callable[[np.ndarray], Pick], max_new: int,
           emit: Callable[[TokenEvent], None], finished: Callable[[int], bool],
           tick: Callable[[], None] = lambda: None) -> None:
    """Decode up to ``max_new`` tokens after ``prompt_ids``; ``finished(token)`` ends it after a token, ``tick``
    runs after every evaluation (the thread tuner's clock)."""
    eval_prompt(llm, prompt_ids)
    tick()
    for step in range(max_new):
        pick = sampler(last_logits(llm))
        emit(TokenEvent(pick.token_id, pick.prob, pick.top_ids, pick.top_probs, time.perf_counter()))
        if step == max_new - 1 or finished(pick.token_id):
            return
        llm.eval([pick.token_id])
        tick()


class LlamaCppEngine(GenerationEngine):
    """Streaming generation and next-token probabilities for a GGUF model loaded in llama.cpp."""

    name = ENGINE_NAME

    def __init__(self, loaded: LoadedModel, compute: ComputeThread | None = None) -> None:
        self.notes: list[Msg] = []
        self.loaded = loaded
        self.compute = compute or ComputeThread()
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.precision = str(loaded.key.dtype)
        self.context = int(self.model.n_ctx())

    def eos_ids(self) -> set[int]:
        """The tokenizer's end-of-sequence token and every end-of-generation token the GGUF declares."""
        import llama_cpp

        ids = {self.tokenizer.eos_token_id, getattr(self.model, "token_eos", lambda: None)()}
        vocab = llama_cpp.llama_model_get_vocab(self.model.model)
        ids |= {i for i in self.tokenizer.all_special_ids if llama_cpp.llama_vocab_is_eog(vocab, i)}
        return {i for i in ids if i is not None and i >= 0}

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
        streamer = QueueStreamer(None)
        halt = threading.Event()  # ends the worker when the consumer goes away; the caller's event stays as it was
        sampler = Sampler(settings, result.seed, prompt_ids)
        finished = self._finisher(settings, (stop_event, halt))
        started = [0.0]

        def work() -> None:
            with self.compute.lock:
                try:
                    tuner = tuner_of(self.model, self.compute.threads)
                    tuner.apply()
                    started[0] = time.perf_counter()
                    decode(self.model, prompt_ids, sampler, result.max_new_tokens, streamer.queue.put, finished,
                           tuner.tick)
                except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    streamer.fail(exc)
                    return
            streamer.end()

        worker = self.compute.submit(work)
        try:
            yield from self._consume(streamer, result, settings, stop_event, started)
        finally:
            halt.set()
            concurrent.futures.wait([worker], timeout=30)

    def _finisher(self, settings: GenerationSettings, events: tuple[threading.Event, ...]) -> Callable[[int], bool]:
        """``finished(token)``: an end-of-generation token, a stop event, or a stop string in the recent text."""
        eos = self.eos_ids()
        stops = list(settings.stop_strings)
        window = max((len(s) for s in stops), default=0) + 4
        generated: list[int] = []

        def finished(token: int) -> bool:
            generated.append(token)
            if token in eos or any(event.is_set() for event in events):
                return True
            if not stops:
                return False
            tail = self.tokenizer.decode(generated[-window:], skip_special_tokens=True)
            return any(s in tail for s in stops)

        return finished

    def next_tokens(self, prompt_ids: list[int], k: int = 20) -> list[dict[str, Any]]:
        """The ``k`` most likely next tokens after ``prompt_ids`` as ``[{"token", "prob", "id"}]``."""
        if not prompt_ids:
            raise InputError("generate.error.empty_prompt")

        def work() -> np.ndarray:
            tuner_of(self.model, self.compute.threads).apply()
            eval_prompt(self.model, prompt_ids)
            return softmax(last_logits(self.model))

        ids, probs = top_k(self.compute.run(work), k)
        decoder = PieceDecoder(self.tokenizer)
        return [{"token": decoder.token_text(i), "prob": p, "id": i} for i, p in zip(ids, probs, strict=True)]
