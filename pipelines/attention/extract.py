"""The Attention tab's plain data: the request, the result, token labels and how a model is loaded for it.

The task itself (tokenize, run with ``output_attentions``, numpy out) is :mod:`pipelines.attention.task`,
imported when first used so that importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.errors import InputError
from pipelines.limits import Limits
from pipelines.messages import Msg

if TYPE_CHECKING:
    from pipelines.models.manager import LoadedModel

DEFAULT_MAX_TOKENS = 256
HARD_MAX_TOKENS = 512
MIN_TOKENS = 2
EAGER = "eager"
# Byte-level BPE and SentencePiece markers shown as readable characters.
TOKEN_MARKERS = (("Ġ", " "), ("▁", " "), ("Ċ", "↵"), ("ĉ", "⇥"), ("</w>", ""))


class AttentionPart(StrEnum):
    """Which attention the result holds (the API's ``part``)."""

    SELF = "self-attention"
    ENCODER = "encoder self-attention"

    @property
    def msg(self) -> Msg:
        return Msg.of("attention.part.encoder" if self is AttentionPart.ENCODER else "attention.part.self")


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
    part: AttentionPart = AttentionPart.SELF
    notes: list[Msg] = field(default_factory=list)

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
    for marker, shown in TOKEN_MARKERS:
        token = token.replace(marker, shown)
    return token


def clamp_max_tokens(value: Any) -> int:
    """The token cap asked for, kept within [MIN_TOKENS, HARD_MAX_TOKENS]."""
    try:
        cap = int(value)
    except (TypeError, ValueError):
        raise InputError("attention.err.token_limit", limit=HARD_MAX_TOKENS) from None
    return max(MIN_TOKENS, min(cap, HARD_MAX_TOKENS))


def unwrap_peft(model: Any) -> Any:
    """The transformers model inside a PeftModel (LoRA layers stay injected and active)."""
    if type(model).__name__.startswith("Peft") and hasattr(model, "get_base_model"):
        return model.get_base_model()
    return model



def backbone(model: Any) -> tuple[Any, AttentionPart]:
    """The module to run for attentions, skipping task heads (an LM head costs more than the attention)."""
    inner = unwrap_peft(model)
    config = getattr(inner, "config", None)
    if getattr(config, "is_encoder_decoder", False) and hasattr(inner, "get_encoder"):
        return inner.get_encoder(), AttentionPart.ENCODER
    return getattr(inner, "base_model", inner), AttentionPart.SELF


def position_limit(model: Any) -> int | None:
    """How many positions the model can encode, if its config says (learned absolute positions)."""
    config = getattr(unwrap_peft(model), "config", None)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def load_for_attention(manager: Any, ref: str, progress: Any = None) -> LoadedModel:
    """Load ``ref`` with the eager attention kernel (a separate cache entry from the one used to generate)."""
    return manager.load(ref, None, attn_implementation=EAGER, progress=progress)


def extract(
    manager: Any, ref: str, request: AttentionInput, progress: Any = None, limits: Limits | None = None,
    batcher: Any = None, max_batch_bytes: int = 64 * 2**20,
) -> AttentionResult:
    """Load ``ref`` for attention and run the task on ``request`` (texts over ``limits`` are cut with a note).

    With ``batcher`` (``ctx.batcher``), requests other users send at the same time share one forward pass while
    their weights together stay under ``max_batch_bytes``."""
    from pipelines.attention.task import AttentionTask

    return AttentionTask(load_for_attention(manager, ref, progress), limits, batcher, max_batch_bytes)(request)
