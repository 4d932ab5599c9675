"""Each evaluated model as a :class:`Predictor`: ``predict(inputs, targets) -> one dict per row`` (plain data).

- classification: a fine-tuned run or sequence classifier as is; an encoder by zero-shot embeddings and a causal
  LM by label likelihood, both with the label set found in the file;
- generation: greedy replies of a causal LM and the reference's NLL given the prompt (teacher forcing);
- language modelling: each text's NLL with sliding windows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pipelines.engines.remote import is_remote
from pipelines.errors import InputError
from pipelines.evaluation.lm_scoring import CausalScorer
from pipelines.evaluation.spec import EvalData, EvalOptions, EvalTask
from pipelines.messages import Msg
from pipelines.models.kinds import ModelKind

if TYPE_CHECKING:
    from pipelines.context import AppContext
    from pipelines.models.manager import ModelManager
    from pipelines.tasks.classification import Classifier


class Predictor(Protocol):
    def predict(self, inputs: list[str], targets: list[str] | None) -> list[dict[str, Any]]: ...


class ClassifierPredictor:
    """Top label of any :class:`~pipelines.tasks.classification.Classifier`."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier

    def predict(self, inputs: list[str], targets: list[str] | None) -> list[dict[str, Any]]:
        return [{"prediction": r["label"]} for r in self.classifier.classify(inputs)]


class GenerationPredictor:
    """A causal LM's greedy reply and the reference's log-likelihood given the prompt."""

    def __init__(self, scorer: CausalScorer, max_new_tokens: int) -> None:
        self.scorer, self.max_new_tokens = scorer, max_new_tokens

    def predict(self, inputs: list[str], targets: list[str] | None) -> list[dict[str, Any]]:
        replies = self.scorer.generate(inputs, self.max_new_tokens)
        nll = self.scorer.reference_nll(inputs, targets or [""] * len(inputs))
        return [{"prediction": reply, "nll": n.total, "tokens": n.tokens}
                for reply, n in zip(replies, nll, strict=True)]


class PerplexityPredictor:
    """Each text's total NLL and scored token count under a causal LM (sliding windows)."""

    def __init__(self, scorer: CausalScorer) -> None:
        self.scorer = scorer

    def predict(self, inputs: list[str], targets: list[str] | None) -> list[dict[str, Any]]:
        return [{"nll": n.total, "tokens": n.tokens} for n in self.scorer.text_nll(inputs)]


def model_kind(manager: ModelManager, ref: str) -> str:
    """The head a reference is evaluated with (a run's kind, an embedded model's default, a folder's config)."""
    return str(manager.default_kind(manager.resolve(ref)))


def kind_name(kind: str) -> Msg:
    """A model kind as a translated name (the Models tab's texts)."""
    return Msg(f"models.kind.{kind.replace('-', '_')}")


def make_predictor(manager: ModelManager, ref: str, data: EvalData, options: EvalOptions,
                   progress: Any = None, decisions: Any = None) -> Predictor:
    """Load ``ref`` for ``data.task``; a keyed error when the model cannot do that task."""
    kind = model_kind(manager, ref)
    if data.task == EvalTask.CLASSIFICATION:
        return ClassifierPredictor(_classifier(manager, ref, kind, data.labels, progress, decisions))
    if kind != ModelKind.CAUSAL_LM:
        raise InputError("evaluate.needs_causal_lm", model=ref, kind=kind_name(kind))
    scorer = CausalScorer(manager.load(ref, ModelKind.CAUSAL_LM.value, progress=progress), options.batch_size)
    if data.task == EvalTask.GENERATION:
        return GenerationPredictor(scorer, options.max_new_tokens)
    return PerplexityPredictor(scorer)


def _classifier(manager: ModelManager, ref: str, kind: str, labels: list[str], progress: Any,
                decisions: Any) -> Classifier:
    from pipelines.tasks.classify import ClassifierSpec, Method, make_classifier

    methods = {ModelKind.SEQ_CLS.value: Method.FINETUNED, ModelKind.ENCODER.value: Method.EMBEDDINGS,
               ModelKind.CAUSAL_LM.value: Method.LM}
    if kind not in methods:
        raise InputError("evaluate.cannot_classify", model=ref, kind=kind_name(kind))
    spec = ClassifierSpec(methods[kind].value, ref, list(labels), precision="float32")
    return make_classifier(manager, spec, progress, decisions)


def predictor_factory(source: AppContext | ModelManager, data: EvalData,
                      options: EvalOptions) -> Callable[[str], Predictor]:
    """``ref -> Predictor`` for ``data``: local models through the manager, ``remote:`` models (generation only)
    through the app context's endpoints. ``source``: the app context, or a bare model manager (no remote)."""
    manager = getattr(source, "manager", source)
    decisions = getattr(source, "decisions", None) if manager is not source else None

    def factory(ref: str) -> Predictor:
        if is_remote(ref):
            from pipelines.evaluation.remote import remote_predictor

            return remote_predictor(None if manager is source else source, ref, data, options)
        return make_predictor(manager, ref, data, options, decisions=decisions)

    return factory
