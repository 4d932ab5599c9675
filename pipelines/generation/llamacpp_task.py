"""Task prompts (summaries, fields, QA, LM zero-shot) answered by a GGUF model through llama.cpp.

:class:`LlamaCppTaskLM` implements :class:`pipelines.generation.task_lm.TaskLM`: the same chat-formatted prompt as
:class:`~pipelines.generation.task_lm.LocalTaskLM` (``lm_prompting.render_prompt`` through the same tokenizer), greedy
with the same repetition penalty, decoded by :class:`~pipelines.generation.llamacpp.LlamaCppEngine` in the one
compute thread; label log-likelihoods are summed from the last position's logits, one label token at a time, after
the prompt (evaluated once for all labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipelines.errors import InputError
from pipelines.generation.llamacpp import LlamaCppEngine, eval_prompt, last_logits
from pipelines.generation.llamacpp_sampling import log_normaliser
from pipelines.generation.llamacpp_threads import tuner_of
from pipelines.generation.settings import GenerationSettings, Mode
from pipelines.generation.task_lm import DEFAULT_REPETITION_PENALTY, InProcessTaskLM
from pipelines.tasks.lm_prompting import SYSTEM, GenerationConfig, render_prompt


class LlamaCppTaskLM(InProcessTaskLM):
    """A GGUF causal LM (the embedded SmolLM2, a ``.gguf`` file, a run on one) answering task prompts greedily."""

    def __init__(self, ctx: Any, ref: str, progress: Any = None) -> None:
        from pipelines.models.llamacpp import gguf_source

        source = gguf_source(ctx.manager, ref)
        if source is None:
            raise InputError("generate.error.no_gguf", ref=str(ref)[:200])
        compute = ctx.generation.compute
        self.loaded = ctx.manager.load_llamacpp(source, compute.threads, progress)
        self.engine = LlamaCppEngine(self.loaded, compute)
        self.tokenizer = self.loaded.tokenizer
        self.context = self.engine.context
        name = source.run.reference if source.run else self.loaded.key.model
        self.label = f"{name} (llama.cpp, {self.loaded.key.dtype})"

    def _prompt_ids(self, user: str, system: str, prefill: str) -> list[int]:
        ids = list(self.tokenizer(render_prompt(self.tokenizer, user, system, prefill),
                                  add_special_tokens=False).input_ids)
        keep = GenerationConfig().max_prompt_tokens + 512  # the transformers path keeps the same tail
        return ids[-keep:]

    def reply(self, user: str, system: str = SYSTEM, max_new_tokens: int = 128, prefill: str = "",
              repetition_penalty: float = DEFAULT_REPETITION_PENALTY) -> str:
        """The greedy reply to one user message (``prefill`` starts it and is part of the returned text)."""
        settings = GenerationSettings(max_new_tokens=max_new_tokens, do_sample=False, mode=Mode.COMPLETION,
                                      repetition_penalty=repetition_penalty)
        result = self.engine.generate(self._prompt_ids(user, system, prefill), settings, mode=Mode.COMPLETION)
        return (prefill + result.text).strip()

    def label_logliks(self, user: str, labels: Sequence[str], system: str = SYSTEM) -> list[float] | None:
        """Sum of log-probabilities of each label as the reply to ``user``."""
        tok = self.tokenizer
        prefix = self._prompt_ids(user, system, "")
        label_ids = [tok(label, add_special_tokens=False)["input_ids"] or [tok.eos_token_id] for label in labels]
        llm = self.engine.model

        def work() -> list[float]:
            tuner_of(llm, self.engine.compute.threads).apply()
            eval_prompt(llm, prefix)
            after_prompt = last_logits(llm)
            scores = []
            for ids in label_ids:
                llm.n_tokens = len(prefix)  # back to the prompt: the previous label's tokens leave the KV cache
                logits, total = after_prompt, 0.0
                for i, token in enumerate(ids):
                    top, log_sum = log_normaliser(logits)
                    total += float(logits[token]) - top - log_sum
                    if i + 1 < len(ids):
                        llm.eval([token])
                        logits = last_logits(llm)
                scores.append(total)
            return scores

        return self.engine.compute.run(work)
