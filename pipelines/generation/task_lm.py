"""The language model behind a task prompt (summary, fields to JSON, QA, LM scoring), whatever engine answers it.

:class:`TaskLM` is what the task pipelines call: a greedy, deterministic ``reply`` to one user message, ``replies``
to many (in input order), token counting and truncation, the context size and a ``label`` saying what answered.

- :class:`LocalTaskLM` wraps a loaded transformers causal LM (:mod:`pipelines.tasks.lm_prompting`, unchanged
  outputs); with the app's decode batcher, prompts of several users share decoding steps.
- :class:`pipelines.engines.remote_task.RemoteTaskLM` asks a remote OpenAI-compatible endpoint
  (``remote:<endpoint>/<model>``): chat completions at temperature 0, several prompts in flight at once.
- ``pipelines.generation.llamacpp_task.LlamaCppTaskLM``: a GGUF model through llama.cpp in this process.

:func:`task_lm` picks the one for a model reference and engine choice. ``label_logliks`` (the log-likelihood of
fixed replies, used to rank candidate spans and labels) is ``None`` where the engine cannot give it (remote).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pipelines.errors import InputError
from pipelines.generation.engines import Engine, resolve_engine
from pipelines.tasks.lm_prompting import DEFAULT_LM, SYSTEM

if TYPE_CHECKING:
    import threading

    from pipelines.generation.batcher import DecodeBatcher
    from pipelines.models.manager import LoadedModel

ReplyProgress = Callable[[int, int], None]  # (prompts answered, prompts in all)
DEFAULT_REPETITION_PENALTY = 1.15


@runtime_checkable
class TaskLM(Protocol):
    """A causal LM answering task prompts (greedy, deterministic)."""

    context: int  # tokens the model reads (prompt + reply)
    label: str  # what answers, e.g. "smollm2-135m-instruct (transformers, float32)" or "remote:lcp/smol"

    def reply(self, user: str, system: str = SYSTEM, max_new_tokens: int = 128, prefill: str = "",
              repetition_penalty: float = DEFAULT_REPETITION_PENALTY) -> str:
        """The reply to one user message (``prefill`` starts the reply and is part of the returned text)."""

    def replies(self, users: Sequence[str], system: str = SYSTEM, max_new_tokens: int = 128, prefill: str = "",
                repetition_penalty: float = DEFAULT_REPETITION_PENALTY, progress: ReplyProgress | None = None,
                stop: threading.Event | None = None) -> list[str]:
        """The replies to many messages, in input order; after ``stop`` no new prompt is started and the replies
        of the leading prompts answered are returned (fewer than ``users``)."""

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` (an estimate where the engine's tokenizer is not at hand)."""

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """``text`` cut to at most ``max_tokens`` tokens, and whether it was cut."""

    def label_logliks(self, user: str, labels: Sequence[str], system: str = SYSTEM) -> list[float] | None:
        """Sum of log-probabilities of each label as the reply to ``user``; None when the engine cannot score."""


class InProcessTaskLM:
    """What an engine running in this process shares: prompts answered one after another in the compute thread,
    tokens counted and cut with the model's own tokenizer (``self.tokenizer``); subclasses give ``reply``."""

    tokenizer: Any

    def reply(self, user: str, system: str = SYSTEM, max_new_tokens: int = 128, prefill: str = "",
              repetition_penalty: float = DEFAULT_REPETITION_PENALTY) -> str:
        raise NotImplementedError

    def replies(self, users: Sequence[str], system: str = SYSTEM, max_new_tokens: int = 128, prefill: str = "",
                repetition_penalty: float = DEFAULT_REPETITION_PENALTY, progress: ReplyProgress | None = None,
                stop: threading.Event | None = None) -> list[str]:
        """The replies in input order; after ``stop`` no new prompt starts."""
        out: list[str] = []
        for user in users:
            if stop is not None and stop.is_set():
                break
            out.append(self.reply(user, system, max_new_tokens, prefill, repetition_penalty))
            if progress is not None:
                progress(len(out), len(users))
        return out

    def count_tokens(self, text: str) -> int:
        from pipelines.tasks.lm_prompting import count_tokens

        return count_tokens(self.tokenizer, text)

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        from pipelines.tasks.lm_prompting import truncate_tokens

        return truncate_tokens(self.tokenizer, text, max_tokens)


class LocalTaskLM(InProcessTaskLM):
    """A transformers causal LM loaded by the model manager, prompted through its chat template."""

    def __init__(self, loaded: LoadedModel, batcher: DecodeBatcher | None = None) -> None:
        from pipelines.limits import token_limit

        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.context = token_limit(loaded, 1_000_000)
        self.label = f"{loaded.key.model} (transformers, {loaded.key.dtype})"
        self.batcher = batcher  # the app's decode batcher: concurrent prompts share decoding steps

    def reply(self, user: str, system: str = SYSTEM, max_new_tokens: int = 128, prefill: str = "",
              repetition_penalty: float = DEFAULT_REPETITION_PENALTY) -> str:
        from pipelines.tasks.lm_prompting import GenerationConfig, generate

        config = GenerationConfig(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
        if self.batcher is not None and self.batcher.enabled:
            return self._reply_batched(user, system, config, prefill)
        return generate(self.loaded, user, config, prefill=prefill, system=system)

    def _reply_batched(self, user: str, system: str, config: Any, prefill: str) -> str:
        """:meth:`reply` as one row of the decode batcher: the same prompt, greedy choice and repetition penalty as
        ``model.generate`` in :func:`~pipelines.tasks.lm_prompting.generate`; other users' prompts (task prompts
        and chats on this model) share its forward passes."""
        from types import SimpleNamespace

        from pipelines.generation.batcher_rows import BatchRequest, RowSampler, eos_set, in_batch
        from pipelines.generation.streaming import QueueStreamer
        from pipelines.tasks.lm_prompting import render_prompt

        tok, model = self.tokenizer, self.loaded.model
        ids = tok(render_prompt(tok, user, system, prefill), add_special_tokens=False)["input_ids"]
        ids = ids[-(config.max_prompt_tokens + 512):]
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        request = BatchRequest(
            model=model, tokenizer=tok, prompt_ids=list(ids), max_new=config.max_new_tokens,
            sampler=RowSampler(SimpleNamespace(do_sample=False, repetition_penalty=config.repetition_penalty), 0,
                               self.loaded.device),
            eos=eos_set(eos if eos is not None else tok.eos_token_id),
        )
        assert self.batcher is not None
        tokens: list[int] = []
        with in_batch(self.batcher, request):
            while (item := request.streamer.queue.get()) is not QueueStreamer.END:
                if isinstance(item, BaseException):
                    raise item
                tokens.append(item.token_id)
        return (prefill + tok.decode(tokens, skip_special_tokens=True)).strip()

    def label_logliks(self, user: str, labels: Sequence[str], system: str = SYSTEM) -> list[float] | None:
        from pipelines.tasks.lm_prompting import label_logliks

        return label_logliks(self.loaded, user, list(labels), system)


def as_task_lm(lm: Any) -> TaskLM | None:
    """``lm`` as a :class:`TaskLM`: a loaded transformers model is wrapped in :class:`LocalTaskLM`; None stays None."""
    if lm is None or isinstance(lm, TaskLM):
        return lm
    return LocalTaskLM(lm)


def task_lm(ctx: Any, ref: str, engine: str = Engine.AUTO, progress: Any = None) -> TaskLM:
    """The :class:`TaskLM` for model ``ref`` (default SmolLM2) and the engine choice (``auto``: the app decides).

    ``remote:<endpoint>/<model>`` asks that endpoint (the engine choice does not apply); a local causal LM is
    answered by the engine :func:`~pipelines.generation.engines.resolve_engine` picks.
    """
    from pipelines.engines.remote import is_remote

    ref = (ref or "").strip() or DEFAULT_LM
    if is_remote(ref):
        from pipelines.engines.remote_task import RemoteTaskLM

        return RemoteTaskLM(ctx, ref)
    if resolve_engine(ctx, ref, engine) == Engine.LLAMACPP:
        try:
            from pipelines.generation.llamacpp_task import LlamaCppTaskLM
        except ModuleNotFoundError as exc:  # task prompts on llama.cpp not built in: transformers answers auto
            if exc.name != "pipelines.generation.llamacpp_task" or str(engine) == Engine.LLAMACPP:
                raise InputError("engines.error.llamacpp_tasks_missing", ref=ref[:200]) from None
        else:
            return LlamaCppTaskLM(ctx, ref, progress=progress)
    return LocalTaskLM(ctx.manager.load(ref, "causal-lm", progress=progress), getattr(ctx, "decode_batcher", None))
