"""Extract attention weights from any loaded transformers model as plain numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.errors import InputError
from pipelines.models.manager import LoadedModel
from pipelines.tasks.base import Task

DEFAULT_MAX_TOKENS = 256
HARD_MAX_TOKENS = 512
MIN_TOKENS = 2
MAX_TEXT_CHARS = 20_000
EAGER = "eager"
# Byte-level BPE and SentencePiece markers shown as readable characters.
TOKEN_MARKERS = {"Ġ": " ", "▁": " ", "Ċ": "↵", "ĉ": "⇥", "</w>": ""}


@dataclass
class AttentionInput:
    """One request: a text, an optional second sentence (BERT-style pairs) and the token cap."""

    text: str
    text_pair: str = ""
    max_tokens: int = DEFAULT_MAX_TOKENS


@dataclass
class AttentionResult:
    """Attention of every layer and head for one input, as plain data."""

    tokens: list[str]  # raw tokenizer pieces
    attentions: np.ndarray  # (layers, heads, tokens, tokens), rows sum to 1
    causal: bool  # a decoder: each token only sees itself and earlier tokens
    total_tokens: int  # tokens before the cap
    max_tokens: int  # the cap that was applied
    sentence_b_start: int | None = None
    model: str = ""
    model_type: str = ""
    part: str = "self-attention"  # or "encoder self-attention" for encoder-decoder models
    notes: list[str] = field(default_factory=list)

    @property
    def num_layers(self) -> int:
        return int(self.attentions.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.attentions.shape[1])

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def truncated(self) -> bool:
        return self.total_tokens > self.num_tokens

    @property
    def labels(self) -> list[str]:
        """Readable, unique token labels (``index token``) for plot axes."""
        return [f"{i} {pretty_token(tok)}" for i, tok in enumerate(self.tokens)]


def pretty_token(token: str) -> str:
    """Replace tokenizer whitespace markers with readable characters."""
    for marker, shown in TOKEN_MARKERS.items():
        token = token.replace(marker, shown)
    return token


def clamp_max_tokens(value: Any) -> int:
    """The token cap asked for, kept within [MIN_TOKENS, HARD_MAX_TOKENS]."""
    try:
        cap = int(value)
    except (TypeError, ValueError):
        raise InputError(f"The token limit must be a whole number up to {HARD_MAX_TOKENS}.") from None
    return max(MIN_TOKENS, min(cap, HARD_MAX_TOKENS))


def _unwrap_peft(model: Any) -> Any:
    """The transformers model inside a PeftModel (LoRA layers stay injected and active)."""
    if type(model).__name__.startswith("Peft") and hasattr(model, "get_base_model"):
        return model.get_base_model()
    return model


def backbone(model: Any) -> tuple[Any, str]:
    """The module to run for attentions, skipping task heads (an LM head costs more than the attention)."""
    inner = _unwrap_peft(model)
    config = getattr(inner, "config", None)
    if getattr(config, "is_encoder_decoder", False) and hasattr(inner, "get_encoder"):
        return inner.get_encoder(), "encoder self-attention"
    return getattr(inner, "base_model", inner), "self-attention"


def position_limit(model: Any) -> int | None:
    """How many positions the model can encode, if its config says (learned absolute positions)."""
    config = getattr(_unwrap_peft(model), "config", None)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class AttentionTask(Task[AttentionInput, AttentionResult]):
    """Tokenize (with a cap), run the model with ``output_attentions=True``, return numpy arrays."""

    def __init__(self, loaded: LoadedModel) -> None:
        if loaded.tokenizer is None or loaded.kind == "spacy":
            raise InputError("Attention needs a transformers model; spaCy pipelines have no attention weights.")
        super().__init__(loaded)
        self.module, self.part = backbone(self.model)

    def preprocess(self, inputs: AttentionInput) -> dict:
        text = (inputs.text or "").strip()
        pair = (inputs.text_pair or "").strip()
        if not text:
            raise InputError("Type a text to look at its attention.")
        if len(text) + len(pair) > MAX_TEXT_CHARS:
            raise InputError(f"The text is too long ({len(text) + len(pair)} characters; at most {MAX_TEXT_CHARS}).")
        cap = clamp_max_tokens(inputs.max_tokens)
        notes: list[str] = []
        limit = position_limit(self.model)
        if limit is not None and cap > limit:
            cap = limit
            notes.append(f"This model encodes at most {limit} positions, so the limit is {limit} tokens.")
        args = (text, pair) if pair else (text,)
        total = len(self.tokenizer(*args, add_special_tokens=True)["input_ids"])
        encoded = self.tokenizer(
            *args, return_tensors="pt", truncation="longest_first" if pair else True, max_length=cap,
        )
        kept = int(encoded["input_ids"].shape[1])
        if kept < MIN_TOKENS:
            raise InputError("The text gives fewer than 2 tokens; type a longer text.")
        b_start = None
        if pair:
            try:
                ids = encoded.sequence_ids(0)
                b_start = ids.index(1) if 1 in ids else None
            except (ValueError, AttributeError):  # slow tokenizers have no sequence ids
                b_start = None
        if total > kept:
            notes.insert(0, f"The input has {total} tokens; only the first {kept} were kept (limit {cap}).")
        inputs_on_device = {k: v.to(self.module.device) for k, v in encoded.items() if k != "token_type_ids"}
        if "token_type_ids" in encoded and _accepts_token_types(self.module):
            inputs_on_device["token_type_ids"] = encoded["token_type_ids"].to(self.module.device)
        tokens = self.tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())
        return {"inputs": inputs_on_device, "tokens": tokens, "total": total, "cap": cap,
                "b_start": b_start, "notes": notes}

    def forward(self, batch: dict) -> dict:
        outputs = self.module(**batch["inputs"], output_attentions=True, return_dict=True)
        attentions = getattr(outputs, "attentions", None)
        if not attentions or any(a is None for a in attentions):
            raise InputError(
                "This model returned no attention weights (its attention kernel does not expose them)."
            )
        stacked = np.stack([a[0].float().cpu().numpy() for a in attentions]).astype(np.float32, copy=False)
        return {**batch, "attentions": stacked}

    def postprocess(self, outputs: dict) -> AttentionResult:
        att = outputs["attentions"]
        n = att.shape[-1]
        # A decoder's mask zeroes every weight above the diagonal; softmax never gives an exact 0 otherwise.
        rows, cols = np.triu_indices(n, k=1)
        causal = bool(n > 1 and not att[0][:, rows, cols].any())
        config = getattr(_unwrap_peft(self.model), "config", None)
        return AttentionResult(
            tokens=list(outputs["tokens"]),
            attentions=att,
            causal=causal,
            total_tokens=outputs["total"],
            max_tokens=outputs["cap"],
            sentence_b_start=outputs["b_start"],
            model=self.loaded.ref.name,
            model_type=str(getattr(config, "model_type", "")),
            part=self.part,
            notes=list(outputs["notes"]),
        )


def _accepts_token_types(module: Any) -> bool:
    import inspect

    try:
        return "token_type_ids" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


def load_for_attention(manager: Any, ref: str, progress: Any = None) -> LoadedModel:
    """Load ``ref`` with the eager attention kernel (a separate cache entry from the one used to generate)."""
    return manager.load(ref, None, attn_implementation=EAGER, progress=progress)


def extract(manager: Any, ref: str, request: AttentionInput, progress: Any = None) -> AttentionResult:
    """Load ``ref`` for attention and run the task on ``request``."""
    return AttentionTask(load_for_attention(manager, ref, progress))(request)
