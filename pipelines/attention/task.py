"""The attention task: tokenize (with caps), run the model with ``output_attentions=True``, return numpy arrays."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.attention.capture import capture
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
    from pipelines.tasks.microbatch import MicroBatcher

FLOAT_BYTES = 4


class AttentionTask(Task[AttentionInput, AttentionResult]):
    """Tokenize (with a cap), run the model with ``output_attentions=True``, return numpy arrays."""

    def __init__(self, loaded: LoadedModel, limits: Limits | None = None, batcher: MicroBatcher | None = None,
                 max_batch_bytes: int = 64 * 2**20) -> None:
        if loaded.tokenizer is None or loaded.kind == "spacy":
            raise InputError("attention.err.spacy")
        super().__init__(loaded)
        self.limits = limits or Limits()
        self.module, self.part = backbone(self.model)
        self.batcher = batcher  # set: concurrent requests on this model share one forward pass (ctx.batcher)
        self.max_batch_bytes = max_batch_bytes  # weights one shared forward may produce; bigger requests run alone

    def __call__(self, inputs: AttentionInput) -> AttentionResult:
        if self.batcher is None:
            return super().__call__(inputs)
        import torch

        batch = self.preprocess(inputs)
        key = ("attention", self.loaded.key, self.part)
        outputs = self.batcher.run(key, [batch], self.forward_many, cost=self.weight_bytes(batch),
                                   max_cost=self.max_batch_bytes)[0]
        with torch.inference_mode():
            return self.postprocess(outputs)

    def weight_bytes(self, batch: dict) -> int:
        """Bytes of attention weights ``batch`` produces (layers x heads x tokens x tokens floats)."""
        config = getattr(unwrap_peft(self.model), "config", None)
        layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0) or 32)
        heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0) or 32)
        tokens = int(batch["inputs"]["input_ids"].shape[1])
        return layers * heads * tokens * tokens * FLOAT_BYTES

    def forward_many(self, batches: list[dict]) -> list[dict]:
        """:meth:`forward` for several requests in one pass: right-padded, masked, each cut back to its tokens."""
        import torch

        with torch.inference_mode():
            if len(batches) == 1:
                return [self.forward(batches[0])]
            padded, lengths = _pad([b["inputs"] for b in batches], self.tokenizer)
            weights = self._weights(padded, lengths)
            return [{**batch, "attentions": array} for batch, array in zip(batches, weights, strict=True)]

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
        return {**batch, "attentions": self._weights(batch["inputs"], [int(batch["inputs"]["input_ids"].shape[1])])[0]}

    def _weights(self, inputs: dict, lengths: list[int]) -> list[np.ndarray]:
        """Each row's (layers, heads, n, n) float32 weights for its first ``n`` tokens (``lengths``): taken layer by
        layer while the forward runs (one layer's weights held at a time), else from ``output_attentions``."""
        taken = capture(self.module, inputs, lengths)
        if taken is not None:
            return taken
        outputs = self.module(**inputs, output_attentions=True, return_dict=True)
        attentions = list(getattr(outputs, "attentions", None) or [])
        del outputs  # with the last row, each layer's tensor is freed as soon as it is copied (one copy, not two)
        if not attentions or any(a is None for a in attentions):
            raise InputError("attention.err.no_weights")
        last = len(lengths) - 1
        return [_gather(attentions, row, n, keep=row < last) for row, n in enumerate(lengths)]

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


def _gather(attentions: list, row: int, n: int, keep: bool = False) -> np.ndarray:
    """Row ``row`` of every layer's (batch, heads, query, key) weights, cut to its ``n`` tokens, as one float32
    (layers, heads, n, n) array; without ``keep`` each layer's tensor is dropped from the list once copied."""
    first = attentions[0]
    stacked = np.empty((len(attentions), int(first.shape[1]), n, n), dtype=np.float32)
    for layer in range(len(attentions)):
        stacked[layer] = attentions[layer][row, :, :n, :n].float().cpu().numpy()
        if not keep:
            attentions[layer] = None
    return stacked


def _pad(inputs: list[dict], tokenizer: Any) -> tuple[dict, list[int]]:
    """Right-pad several single-row encodings to one batch with an attention mask (pads are never attended to)."""
    import torch

    lengths = [int(one["input_ids"].shape[1]) for one in inputs]
    width = max(lengths)
    pad_id = getattr(tokenizer, "pad_token_id", None)
    pad_id = int(pad_id) if pad_id is not None else 0
    batch: dict[str, Any] = {}
    for name in inputs[0]:
        rows = []
        for one, n in zip(inputs, lengths, strict=True):
            row = one[name] if name in one else torch.zeros_like(one["input_ids"])
            fill = pad_id if name == "input_ids" else 0
            rows.append(torch.nn.functional.pad(row, (0, width - n), value=fill))
        batch[name] = torch.cat(rows, dim=0)
    if "attention_mask" not in batch:
        masks = [torch.ones(1, n, dtype=torch.long) for n in lengths]
        batch["attention_mask"] = torch.cat([torch.nn.functional.pad(m, (0, width - n)) for m, n
                                             in zip(masks, lengths, strict=True)]).to(batch["input_ids"].device)
    return batch, lengths
