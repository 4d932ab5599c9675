"""A remote model (``remote:<endpoint>/<model>``) as an evaluated model: generation only.

Replies come through the task-prompt seam (:func:`pipelines.generation.task_lm.task_lm`), which sends a bounded
number of requests at once for remote models. A remote endpoint gives no token probabilities, so the reference
perplexity of such a model is "not available" (``nll`` None: no statistic, a note) rather than a made-up number;
classification and language modelling need those probabilities and are refused with one keyed sentence.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from pipelines.errors import InputError
from pipelines.evaluation.spec import EvalData, EvalOptions, EvalTask
from pipelines.messages import Msg

if TYPE_CHECKING:
    from pipelines.context import AppContext

INTERNAL_METRICS = ("reference_perplexity",)  # what a generation evaluation cannot compute without logits


class RemoteGenerationPredictor:
    """Greedy replies of a remote chat model; the reference's likelihood is unknown (``nll`` None)."""

    def __init__(self, lm: Any, max_new_tokens: int) -> None:
        self.lm, self.max_new_tokens = lm, max_new_tokens
        self.stop_event: threading.Event | None = None  # the job's Stop (set by the job): no new requests after it

    def predict(self, inputs: list[str], targets: list[str] | None) -> list[dict[str, Any]]:
        replies = self.lm.replies(list(inputs), max_new_tokens=self.max_new_tokens, repetition_penalty=1.0,
                                  stop=self.stop_event)  # plain greedy, as the local models are evaluated
        return [{"prediction": str(reply or "").strip(), "nll": None, "tokens": 0} for reply in replies]


def check_remote(refs: list[str], data: EvalData) -> None:
    """Refuse a remote model for a task other than generation before any model is loaded."""
    from pipelines.engines.remote import is_remote

    for ref in refs:
        if is_remote(ref) and data.task != EvalTask.GENERATION:
            raise InputError("evaluate.remote_generation_only", model=ref,
                             task=Msg.of(f"evaluate.task_{data.task.value}"))


def remote_predictor(ctx: AppContext | None, ref: str, data: EvalData,
                     options: EvalOptions) -> RemoteGenerationPredictor:
    """The predictor of a ``remote:`` model, or a keyed refusal (task needs internals, or no app context)."""
    check_remote([ref], data)
    if ctx is None:
        raise InputError("evaluate.remote_needs_app", model=ref)
    from pipelines.generation.task_lm import task_lm

    return RemoteGenerationPredictor(task_lm(ctx, ref), options.max_new_tokens)


def unavailable_notes(report: dict[str, Any]) -> list[Msg]:
    """One note per model whose reference perplexity could not be computed (a remote model)."""
    return [Msg.of("evaluate.remote_no_perplexity", model=model)
            for model, detail in report.get("detail", {}).items()
            if "reference_perplexity" in detail.get("unavailable", ())]
