"""Text classification: a fine-tuned classifier, or zero-shot by embeddings, by an NLI model or by an LM."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.errors import InputError
from pipelines.limits import token_limit as input_limit
from pipelines.tasks.base import Task
from pipelines.tasks.batch import length_sorted_batches
from pipelines.tasks.classification import BaseClassifier, Classifier
from pipelines.tasks.embeddings import DEFAULT_ENCODER, EmbeddingTask, softmax
from pipelines.tasks.lm_prompting import DEFAULT_LM, label_logliks, truncate_tokens
from pipelines.tasks.parallel import cpu_workers, run_encoded
from pipelines.tasks.precision import CANDIDATES, AutoPrecision, DecisionStore, Precision, check_precision
from pipelines.tasks.precision_memory import SpeedMemory, speed_file

if TYPE_CHECKING:
    from pipelines.models.manager import LoadedModel, ModelManager
    from pipelines.tasks.microbatch import MicroBatcher


class Method(StrEnum):
    """How to classify (the values the API accepts)."""

    FINETUNED = "finetuned"
    EMBEDDINGS = "embeddings"
    NLI = "nli"
    LM = "lm"


METHODS = tuple(m.value for m in Method)
DEFAULT_MODELS = MappingProxyType({Method.EMBEDDINGS.value: DEFAULT_ENCODER, Method.LM.value: DEFAULT_LM})
MAX_LABELS = 50
DEFAULT_TEMPLATE = "This text is about {}."


def parse_labels(raw: str | list[str] | None, minimum: int = 2) -> list[str]:
    """Labels typed as ``a, b, c`` (commas, semicolons or new lines), stripped and de-duplicated in order."""
    items = raw if isinstance(raw, list) else re.split(r"[,;\n，；]", raw or "")
    labels = list(dict.fromkeys(s.strip() for s in items if s and s.strip()))
    if len(labels) < minimum:
        raise InputError("classify.too_few_labels", minimum=minimum)
    if len(labels) > MAX_LABELS:
        raise InputError("classify.too_many_labels", limit=MAX_LABELS, count=len(labels))
    return labels


def _result(labels: list[str], probs: np.ndarray | list[float]) -> dict:
    scores = {label: float(p) for label, p in zip(labels, probs, strict=True)}
    ranked = dict(sorted(scores.items(), key=lambda kv: kv[1], reverse=True))
    return {"label": next(iter(ranked)), "scores": ranked}


class SequenceClassifierTask(BaseClassifier, Task[list[str], list[dict]]):
    """A sequence-classification model (hub, folder or fine-tuned adapter) with its own ``id2label``."""

    batch_size = 16  # rows per batch at most; batches run side by side on the cores (pipelines.tasks.parallel)
    window = 512  # rows per call in CSV mode: sorted by token length inside it, so batches need little padding
    min_split_rows = 8  # a call is split between the workers only into batches of at least this many rows
    pad_to_multiple_of = 16  # fewer distinct shapes (oneDNN builds kernels per shape), AMX-friendly sizes

    def __init__(self, loaded: LoadedModel, max_length: int = 512, batcher: MicroBatcher | None = None) -> None:
        super().__init__(loaded)
        self.batcher = batcher  # set: concurrent callers on this model share forward passes (ctx.batcher)
        config = self.model.config
        count = int(getattr(config, "num_labels", 0) or len(config.id2label))
        self.labels = [str(config.id2label.get(i, config.id2label.get(str(i), f"LABEL_{i}"))) for i in range(count)]
        self.max_length = input_limit(loaded, max_length)

    def preprocess(self, inputs: list[str]) -> Any:
        return self.tokenizer(inputs, padding=True, truncation=True, max_length=self.max_length,
                              pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt").to(self.loaded.device)

    def forward(self, batch: Any) -> Any:
        import torch

        return torch.softmax(self.model(**batch).logits.float(), dim=-1).cpu().numpy()

    def postprocess(self, outputs: Any) -> list[dict]:
        return [_result(self.labels, row) for row in outputs]

    def classify(self, texts: list[str]) -> list[dict]:
        """Mini-batches of similar token length (little padding); results in the input order. With a ``batcher``,
        texts other callers send at the same time to this model join the same mini-batches."""
        if self.batcher is not None and texts:
            key = ("seq-cls", self.loaded.key, self.max_length)
            return self.batcher.run(key, list(texts), self._classify)
        return self._classify(texts)

    def _classify(self, texts: list[str]) -> list[dict]:
        """:meth:`classify` for this caller's texts only."""
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        # a call of 16 rows (auto's timed chunks) still gives each worker a batch; a few rows stay one forward
        size = min(self.batch_size, max(self.min_split_rows, -(-len(texts) // cpu_workers(self.loaded.device))))
        batches = length_sorted_batches([len(x) for x in encoded["input_ids"]], size)
        outputs = run_encoded(self, encoded, batches, self.pad_to_multiple_of)
        results: list[dict] = [{}] * len(texts)
        for idx, out in zip(batches, outputs, strict=True):
            for i, result in zip(idx, out, strict=True):
                results[i] = result
        return results


class EmbeddingZeroShot(BaseClassifier):
    """Zero-shot by cosine similarity between the text and ``template.format(label)`` embeddings."""

    batch_size = 32
    window = 256  # rows per call in CSV mode; the encoder sorts them by token length

    def __init__(self, encoder: EmbeddingTask, labels: list[str], template: str = DEFAULT_TEMPLATE,
                 scale: float = 20.0) -> None:
        self.encoder, self.labels, self.scale = encoder, labels, scale
        self.label_vectors = encoder.encode([_fill(template, label) for label in labels])

    def classify(self, texts: list[str]) -> list[dict]:
        sims = self.encoder.encode(texts, batch_size=self.batch_size) @ self.label_vectors.T
        return [_result(self.labels, softmax(row * self.scale)) for row in sims]


class NLIZeroShot(BaseClassifier):
    """Zero-shot with an NLI model through transformers' zero-shot-classification pipeline."""

    batch_size = 4

    def __init__(self, loaded: LoadedModel, labels: list[str], template: str = DEFAULT_TEMPLATE,
                 batcher: MicroBatcher | None = None) -> None:
        from transformers import ZeroShotClassificationPipeline

        label2id = {str(k).lower(): v for k, v in (loaded.model.config.label2id or {}).items()}
        if not any(k.startswith("entail") for k in label2id):
            raise InputError("classify.not_nli", model=loaded.ref.name)
        self.labels, self.template = labels, _fill(template, "{}")
        self.pipe = ZeroShotClassificationPipeline(model=loaded.model, tokenizer=loaded.tokenizer)
        self.key, self.batcher = loaded.key, batcher  # batcher: callers with the same labels share forward passes

    def classify(self, texts: list[str]) -> list[dict]:
        if self.batcher is not None and texts:
            key = ("nli", self.key, tuple(self.labels), self.template)
            return self.batcher.run(key, list(texts), self._classify)
        return self._classify(texts)

    def _classify(self, texts: list[str]) -> list[dict]:
        """:meth:`classify` for these texts in one pipeline call (its mini-batches of ``batch_size`` pairs)."""
        outputs = self.pipe(texts, candidate_labels=self.labels, hypothesis_template=self.template,
                            batch_size=self.batch_size * len(self.labels))  # (text, label) pairs per forward
        outputs = outputs if isinstance(outputs, list) else [outputs]
        results = []
        for out in outputs:
            by_label = dict(zip(out["labels"], out["scores"], strict=True))
            results.append(_result(self.labels, [by_label[label] for label in self.labels]))
        return results


class LMZeroShot(BaseClassifier):
    """Zero-shot by each label's log-likelihood as the LM's answer (softmax over labels)."""

    batch_size = 1

    def __init__(self, loaded: LoadedModel, labels: list[str], max_text_tokens: int = 768) -> None:
        self.loaded, self.labels, self.max_text_tokens = loaded, labels, max_text_tokens

    def classify(self, texts: list[str]) -> list[dict]:
        results = []
        for text in texts:
            text, _ = truncate_tokens(self.loaded.tokenizer, text, self.max_text_tokens)
            prompt = (f"Classify the text into exactly one of these categories: {', '.join(self.labels)}.\n\n"
                      f"Text: {text}\n\nReply with the category only.")
            results.append(_result(self.labels, softmax(label_logliks(self.loaded, prompt, self.labels))))
        return results


def _fill(template: str, label: str) -> str:
    template = (template or DEFAULT_TEMPLATE).strip()
    if "{}" not in template:
        template = template.replace("{label}", "{}") if "{label}" in template else template + " {}"
    return template.replace("{}", label, 1)


@dataclass
class ClassifierSpec:
    """What to build: ``method`` in METHODS, a model reference, candidate labels for zero-shot."""

    method: str = "embeddings"
    model: str = ""
    labels: str | list[str] = ""
    template: str = DEFAULT_TEMPLATE
    precision: str = "auto"  # fine-tuned classifier: auto | float32 | bfloat16 | int8 (pipelines.tasks.precision)


def fine_tuned_classifier(manager: ModelManager, ref: str, precision: str = "auto", progress: Any = None,
                          decisions: DecisionStore | None = None, batcher: MicroBatcher | None = None) -> Classifier:
    """The fine-tuned classifier at ``precision``: float32 exact, bfloat16 or int8 faster, auto measured (CPU).

    ``decisions`` keeps auto's measurements for every session (``ctx.decisions``); without it (a script, a test)
    the measurement is kept by this classifier only.
    """
    precision = check_precision(precision)
    loaded = manager.load(ref, "seq-cls", dtype=None if precision == Precision.AUTO else precision.value,
                          progress=progress)
    exact = SequenceClassifierTask(loaded, batcher=batcher)
    if precision != Precision.AUTO or loaded.device != "cpu":
        return exact

    def loader(dtype: str) -> Callable[[], SequenceClassifierTask]:
        return lambda: SequenceClassifierTask(manager.load(ref, "seq-cls", dtype=dtype))

    return AutoPrecision(exact, {name: loader(name) for name in CANDIDATES}, loaded.key,
                         decisions if decisions is not None else DecisionStore(),
                         release=lambda task: manager.discard(task.loaded.key),
                         memory=SpeedMemory(speed_file(manager.config.cache_dir)))


def check_method(method: str | None) -> Method:
    """``method`` as a :class:`Method`, or a clear error."""
    value = (method or "").strip().lower()
    if value not in METHODS:
        raise InputError("classify.unknown_method", method=value, choices=", ".join(METHODS))
    return Method(value)


def make_classifier(manager: ModelManager, spec: ClassifierSpec, progress: Any = None,
                    decisions: DecisionStore | None = None, batcher: MicroBatcher | None = None) -> Classifier:
    """Build the classifier for ``spec``; every classifier has ``classify(texts) -> [{label, scores}]``.

    With ``batcher`` (``ctx.batcher``), concurrent single requests on the same fine-tuned classifier or encoder
    share forward passes, and so do NLI zero-shot requests with the same labels and template (LM zero-shot runs
    per request)."""
    method = check_method(spec.method)
    ref = (spec.model or "").strip() or DEFAULT_MODELS.get(method.value, "")
    if method == Method.FINETUNED:
        if not ref:
            raise InputError("classify.choose_finetuned")
        return fine_tuned_classifier(manager, ref, spec.precision, progress, decisions, batcher)
    labels = parse_labels(spec.labels)
    if method == Method.EMBEDDINGS:
        encoder = EmbeddingTask(manager.load(ref, "encoder", progress=progress), batcher=batcher)
        return EmbeddingZeroShot(encoder, labels, spec.template)
    if method == Method.NLI:
        if not ref:
            raise InputError("classify.nli_model_needed")
        return NLIZeroShot(manager.load(ref, "seq-cls", progress=progress), labels, spec.template, batcher)
    return LMZeroShot(manager.load(ref, "causal-lm", progress=progress), labels)
