"""The attention task: tokenize (with caps), run the model with ``output_attentions=True``, return numpy arrays."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.attention.extract import (
    MIN_TOKENS,
    AttentionInput,
    AttentionResult,
    backbone,
    clamp_max_tokens,
    position_limit,
    unwrap_peft,
)
from pipelines.errors import InputError
from pipelines.limits import Limits
from pipelines.messages import Msg
from pipelines.tasks.base import Task

if TYPE_CHECKING:
    from pipelines.models.manager import LoadedModel


class AttentionTask(Task[AttentionInput, AttentionResult]):
    """Tokenize (with a cap), run the model with ``output_attentions=True``, return numpy arrays."""

    def __init__(self, loaded: LoadedModel, limits: Limits | None = None) -> None:
        if loaded.tokenizer is None or loaded.kind == "spacy":
            raise InputError("attention.err.spacy")
        super().__init__(loaded)
        self.limits = limits or Limits()
        self.module, self.part = backbone(self.model)

    def _texts(self, inputs: AttentionInput) -> tuple[str, str, list[Msg]]:
        """The text and the pair, stripped and cut to the character cap (a note for each one cut)."""
        text, text_note = self.limits.cut((inputs.text or "").strip())
        pair, pair_note = self.limits.cut((inputs.text_pair or "").strip())
        if not text:
            raise InputError("attention.err.empty")
        return text, pair, [note for note in (text_note, pair_note) if note is not None]

    def preprocess(self, inputs: AttentionInput) -> dict:
        text, pair, notes = self._texts(inputs)
        cap = clamp_max_tokens(inputs.max_tokens)
        limit = position_limit(self.model)
        if limit is not None and cap > limit:
            cap = limit
            notes.append(Msg.of("attention.note.positions_cap", limit=limit))
        args = (text, pair) if pair else (text,)
        total = len(self.tokenizer(*args, add_special_tokens=True)["input_ids"])
        encoded = self.tokenizer(
            *args, return_tensors="pt", truncation="longest_first" if pair else True, max_length=cap,
        )
        kept = int(encoded["input_ids"].shape[1])
        if kept < MIN_TOKENS:
            raise InputError("attention.err.too_few_tokens", count=MIN_TOKENS)
        b_start = None
        if pair:
            try:
                ids = encoded.sequence_ids(0)
                b_start = ids.index(1) if 1 in ids else None
            except (ValueError, AttributeError):  # slow tokenizers have no sequence ids
                b_start = None
        if total > kept:
            notes.insert(0, Msg.of("attention.note.tokens_cut", total=total, kept=kept, cap=cap))
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
            raise InputError("attention.err.no_weights")
        stacked = np.stack([a[0].float().cpu().numpy() for a in attentions]).astype(np.float32, copy=False)
        return {**batch, "attentions": stacked}

    def postprocess(self, outputs: dict) -> AttentionResult:
        att = outputs["attentions"]
        n = att.shape[-1]
        # A decoder's mask zeroes every weight above the diagonal; softmax never gives an exact 0 otherwise.
        rows, cols = np.triu_indices(n, k=1)
        causal = bool(n > 1 and not att[0][:, rows, cols].any())
        config = getattr(unwrap_peft(self.model), "config", None)
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
    try:
        return "token_type_ids" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False
