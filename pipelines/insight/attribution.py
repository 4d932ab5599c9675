"""Why this label? Per-token attributions of a classifier's label, with Captum on the embeddings.

Two classifiers can be explained: a fine-tuned sequence classifier (a run or a folder, loaded in float32) and the
embedding zero-shot method (cosine similarity to each label's hypothesis, softmax over labels). The explained
output is the log-probability of one label (smooth where a probability saturates). Methods: integrated gradients
(``LayerIntegratedGradients`` on the embeddings, every step in one batch, baseline: the same sequence with padding
in place of every non-special token) and gradient x input (``LayerGradientXActivation``). Integrated gradients are
complete: the attributions sum to the log-probability minus the baseline's (``delta`` says by how much they miss;
a note when over 5%).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.attention.extract import pretty_token, unwrap_peft
from pipelines.errors import InputError
from pipelines.insight.common import Described, describe
from pipelines.limits import Limits
from pipelines.messages import Msg
from pipelines.tasks.classify import ClassifierSpec, Method, check_method

if TYPE_CHECKING:
    from pipelines.models.manager import LoadedModel, ModelManager

DEFAULT_STEPS = 32
MAX_STEPS = 256
FIRST_STEPS = 8  # integrated-gradient steps tried first
COMPLETE_WITHIN = 0.05  # the completeness error accepted, relative to the output difference from the baseline
TOP_WHY = 5


class AttributionMethod(StrEnum):
    """How attributions are computed (the API's ``attribution`` values)."""

    INTEGRATED_GRADIENTS = "integrated_gradients"
    GRADIENT_X_INPUT = "gradient_x_input"

    def msg(self, steps: int) -> Msg:
        if self is AttributionMethod.INTEGRATED_GRADIENTS:
            return Msg.of("insight.method.ig", steps=steps)
        return Msg.of("insight.method.gxi")


def step_plan(steps: int) -> tuple[int, ...]:
    """The integrated-gradient step counts tried in turn: a few first, then the number asked for."""
    return (steps,) if steps <= FIRST_STEPS else (FIRST_STEPS, steps)


def check_attribution(value: str | None) -> AttributionMethod:
    """``value`` as an :class:`AttributionMethod` ("" means integrated gradients), or a clear error."""
    text = (value or AttributionMethod.INTEGRATED_GRADIENTS.value).strip().lower()
    if text not in tuple(m.value for m in AttributionMethod):
        raise InputError("insight.err.attribution", method=text,
                         choices=", ".join(m.value for m in AttributionMethod))
    return AttributionMethod(text)


@dataclass
class Attribution:
    """Per-token attributions of one label's log-probability (special tokens left out: never attributed)."""

    tokens: list[str]
    scores: list[float]
    label: str  # the label explained
    predicted: str  # the classifier's top label
    probability: float  # of ``label`` for the text
    output: float  # the explained output: log-probability of ``label`` for the text
    baseline_output: float  # the same for the baseline (integrated gradients only; else nan)
    delta: float  # completeness error of integrated gradients (sum of scores minus the output difference)
    described: Described
    notes: list[Msg] = field(default_factory=list)

    def top(self, k: int = TOP_WHY) -> list[tuple[str, float]]:
        """The ``k`` tokens that push most towards the label, strongest first."""
        order = np.argsort(-np.asarray(self.scores))[:k]
        return [(self.tokens[i], self.scores[i]) for i in order if self.scores[i] > 0]

    def why(self, k: int = TOP_WHY) -> str:
        """The batch CSV's "why" cell: the top tokens with their attributions."""
        return "; ".join(f"{tok.strip()} ({score:+.3f})" for tok, score in self.top(k))

    def to_json(self, lang: str = "en") -> dict[str, Any]:
        return {**self.described.as_dict(lang), "label": self.label, "predicted_label": self.predicted,
                "probability": round(self.probability, 6), "log_probability": round(self.output, 6),
                "baseline_log_probability": None if np.isnan(self.baseline_output)
                else round(self.baseline_output, 6),
                "completeness_delta": None if np.isnan(self.delta) else round(self.delta, 6),
                "tokens": self.tokens, "attributions": [round(s, 6) for s in self.scores],
                "top_tokens": [tok.strip() for tok, _ in self.top()],
                "notes": [note.render(lang) for note in self.notes]}


def embedding_layer(model: Any) -> Any:
    """The layer attributions are taken at: a BERT-like model's whole embedding block (word, position and type
    embeddings after their LayerNorm: a smoother path than the raw word vectors), else the input embeddings."""
    inner = unwrap_peft(model)
    block = getattr(getattr(inner, "base_model", inner), "embeddings", None)
    if block is not None and hasattr(block, "word_embeddings"):
        return block
    return inner.get_input_embeddings()


class LabelExplainer:
    """One classifier made differentiable: ``probs(ids, mask) -> (batch, labels)`` and its word-embedding layer."""

    def __init__(self, loaded: LoadedModel, labels: list[str], max_length: int) -> None:
        self.loaded, self.labels, self.max_length = loaded, labels, max_length
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.embeddings = embedding_layer(self.model)

    def probs(self, ids: Any, mask: Any) -> Any:
        raise NotImplementedError

    def label_index(self, label: str | None, probs: np.ndarray) -> int:
        """The index of ``label`` (case-insensitive), or of the predicted label when blank."""
        if not (label or "").strip():
            return int(np.argmax(probs))
        lowered = [x.lower() for x in self.labels]
        wanted = label.strip().lower()
        if wanted not in lowered:
            raise InputError("insight.err.unknown_label", label=label.strip(), labels=", ".join(self.labels))
        return lowered.index(wanted)

    def explain(self, text: str, label: str | None = None, method: str = "", steps: int = DEFAULT_STEPS,
                limits: Limits | None = None) -> Attribution:
        """Attributions of ``label``'s probability (blank: the predicted label) to the tokens of ``text``."""
        import torch

        text, cut = (limits or Limits()).cut((text or "").strip())
        if not text:
            raise InputError("insight.err.empty")
        chosen = check_attribution(method)
        steps = max(2, min(int(steps or DEFAULT_STEPS), MAX_STEPS))
        enc = self.tokenizer(text, truncation=True, max_length=self.max_length, return_tensors="pt",
                             return_special_tokens_mask=True)
        device = next(self.embeddings.parameters()).device
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        special = enc["special_tokens_mask"][0].bool()
        with torch.no_grad():
            probs = self.probs(ids, mask)[0].float().cpu().numpy()
        target = self.label_index(label, probs)
        scores, base_out, delta, used = self._attribute(chosen, ids, mask, special, target, steps)
        output = float(np.log(max(float(probs[target]), 1e-30)))
        keep = (~special).cpu().numpy()
        tokens = [pretty_token(t) for t, k in zip(self.tokenizer.convert_ids_to_tokens(ids[0].tolist()), keep,
                                                  strict=True) if k]
        notes = [n for n in (cut, self._token_note(text, ids)) if n is not None]
        if abs(delta) > 0.05 * max(abs(output - base_out), 1e-6):  # nan (gradient x input) compares False
            notes.append(Msg.of("insight.note.incomplete", delta=f"{delta:+.4f}", steps=used))
        elif chosen is AttributionMethod.INTEGRATED_GRADIENTS and used < steps:
            notes.append(Msg.of("insight.note.ig_converged", used=used, asked=steps, delta=f"{delta:+.4f}"))
        return Attribution(tokens, [float(s) for s in scores[keep]], self.labels[target],
                           self.labels[int(np.argmax(probs))], float(probs[target]), output, base_out, delta,
                           describe(self.loaded, chosen.msg(used)), notes)

    def _token_note(self, text: str, ids: Any) -> Msg | None:
        total = len(self.tokenizer(text)["input_ids"])
        kept = int(ids.shape[1])
        return Msg.of("insight.note.tokens_cut", total=total, kept=kept) if total > kept else None

    def _attribute(self, method: AttributionMethod, ids: Any, mask: Any, special: Any, target: int,
                   steps: int) -> tuple[np.ndarray, float, float, int]:
        """Per-token scores (summed over the embedding dimensions), the baseline's output, the delta and the
        integrated-gradient steps used."""
        import torch
        from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

        def forward(input_ids: Any, attention_mask: Any) -> Any:
            return torch.log(self.probs(input_ids, attention_mask)[:, target].clamp(min=1e-30))

        with torch.enable_grad():
            if method is AttributionMethod.GRADIENT_X_INPUT:
                attr = LayerGradientXActivation(forward, self.embeddings).attribute(
                    ids, additional_forward_args=(mask,))
                return attr[0].sum(-1).detach().float().cpu().numpy(), float("nan"), float("nan"), 1
            baseline = ids.clone()
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            baseline[0, ~special.to(ids.device)] = pad
            with torch.no_grad():
                ends = forward(torch.cat([ids, baseline]), torch.cat([mask, mask]))
            base_out, gap = float(ends[1]), abs(float(ends[0] - ends[1]))
            explainer = LayerIntegratedGradients(forward, self.embeddings)
            for used in step_plan(steps):  # a few steps first: enough when they are already complete within 5%
                attr, delta = explainer.attribute(ids, baselines=baseline, additional_forward_args=(mask,),
                                                  n_steps=used, internal_batch_size=used,
                                                  return_convergence_delta=True)
                if abs(float(delta.reshape(-1)[0])) <= COMPLETE_WITHIN * max(gap, 1e-6):
                    break
        return attr[0].sum(-1).detach().float().cpu().numpy(), base_out, float(delta.reshape(-1)[0]), used


class ClassifierExplainer(LabelExplainer):
    """A fine-tuned sequence classifier: softmax over its own labels."""

    def probs(self, ids: Any, mask: Any) -> Any:
        import torch

        return torch.softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)


class ZeroShotExplainer(LabelExplainer):
    """The embedding zero-shot method: mean-pooled, normalised text embedding against the labels' hypotheses."""

    def __init__(self, loaded: LoadedModel, labels: list[str], max_length: int, label_vectors: np.ndarray,
                 scale: float) -> None:
        super().__init__(loaded, labels, max_length)
        import torch

        device = next(self.embeddings.parameters()).device
        self.label_vectors = torch.as_tensor(label_vectors, dtype=torch.float32, device=device)
        self.scale = scale

    def probs(self, ids: Any, mask: Any) -> Any:
        import torch

        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        pooled = pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return torch.softmax(pooled @ self.label_vectors.T * self.scale, dim=-1)


def make_explainer(manager: ModelManager, spec: ClassifierSpec, progress: Any = None) -> LabelExplainer:
    """The explainer of a fine-tuned classifier or of the embedding zero-shot method (others: a clear error)."""
    from pipelines.tasks.classify import EmbeddingZeroShot, SequenceClassifierTask, make_classifier

    method = check_method(spec.method)
    if method == Method.FINETUNED:
        ref = (spec.model or "").strip()
        if not ref:
            raise InputError("classify.choose_finetuned")
        task = SequenceClassifierTask(manager.load(ref, "seq-cls", dtype="float32", progress=progress))
        return ClassifierExplainer(task.loaded, task.labels, task.max_length)
    if method == Method.EMBEDDINGS:
        zero_shot = make_classifier(manager, spec, progress)
        assert isinstance(zero_shot, EmbeddingZeroShot)
        encoder = zero_shot.encoder
        return ZeroShotExplainer(encoder.loaded, zero_shot.labels, encoder.max_length, zero_shot.label_vectors,
                                 zero_shot.scale)
    raise InputError("insight.err.explain_method", method=method.value)
