"""The logit lens: every layer's hidden state decoded through the model's final norm and LM head.

For a causal LM (a base model or a ``run:<id>`` adapter) and each input position, the lens gives the top token
each layer would predict next, its probability, and the rank of the model's final choice (its greedy next token) at
every layer. Row 0 is the embedding output; the last row is the model's own output logits, so its top token is
exactly the greedy next token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.attention.extract import unwrap_peft
from pipelines.errors import InputError
from pipelines.insight.common import (
    DEFAULT_LENS_TOKENS,
    Described,
    clamp_tokens,
    describe,
    load_causal_lm,
    pretty,
)
from pipelines.limits import Limits
from pipelines.messages import Msg
from pipelines.tasks.base import Task

if TYPE_CHECKING:
    from pipelines.models.manager import LoadedModel, ModelManager

# Attribute names of the final normalisation in Llama-like (norm), GPT-2-like (ln_f), OPT/T5-like and other models.
NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f", "final_norm", "layer_norm")
METHOD = Msg.of("insight.method.lens")
LENS_CHUNK_VALUES = 1 << 23  # logits decoded at once (rows x vocabulary): about 32 MB of float32


@dataclass
class LensInput:
    """One request: a text and the token cap."""

    text: str
    max_tokens: int = DEFAULT_LENS_TOKENS


@dataclass
class LensResult:
    """The lens as plain data: arrays are (layers, positions); layer 0 is the embedding output."""

    tokens: list[str]  # the input tokens, readable
    top_ids: np.ndarray  # int, the top token of each layer at each position
    top_tokens: list[list[str]]  # the same, decoded
    top_probs: np.ndarray  # its probability
    final_ranks: np.ndarray  # int, 1-based rank of the final (greedy) next token at each layer
    final_probs: np.ndarray  # its probability at each layer
    total_tokens: int
    described: Described
    norm: str = ""  # the module used as final norm ("" when the model has none)
    notes: list[Msg] = field(default_factory=list)

    @property
    def num_layers(self) -> int:
        """Rows of the lens: the embedding output plus every transformer layer."""
        return int(self.top_probs.shape[0])

    @property
    def num_positions(self) -> int:
        return int(self.top_probs.shape[1])

    @property
    def final_ids(self) -> list[int]:
        """The model's greedy next token at every position (the last row's top token)."""
        return [int(i) for i in self.top_ids[-1]]

    @property
    def final_tokens(self) -> list[str]:
        return list(self.top_tokens[-1])

    @property
    def labels(self) -> list[str]:
        """Unique position labels (``index token``) for plot axes."""
        return [f"{i} {tok}" for i, tok in enumerate(self.tokens)]

    def first_top(self) -> list[int]:
        """Per position, the first layer at which the final answer is already the top-1 token."""
        return [int(np.argmax(column == 1)) for column in self.final_ranks.T]

    def to_json(self, lang: str = "en") -> dict[str, Any]:
        """The ``/logit_lens`` answer: every matrix as nested lists, (layers x positions)."""
        return {
            **self.described.as_dict(lang),
            "tokens": self.tokens,
            "num_layers": self.num_layers,
            "num_positions": self.num_positions,
            "layers": ["embeddings", *range(1, self.num_layers)],
            "shape": ["layer", "position"],
            "top_tokens": self.top_tokens,
            "top_ids": self.top_ids.tolist(),
            "top_probs": np.round(self.top_probs, 5).tolist(),
            "final_tokens": self.final_tokens,
            "final_ranks": self.final_ranks.tolist(),
            "final_probs": np.round(self.final_probs, 5).tolist(),
            "first_top_layer": self.first_top(),
            "final_norm": self.norm,
            "total_tokens": self.total_tokens,
            "truncated": self.total_tokens > self.num_positions,
            "notes": [note.render(lang) for note in self.notes],
        }


def lens_parts(model: Any) -> tuple[Any, str, Any]:
    """``(final norm or None, its name, LM head)`` of a causal LM, found by attribute names (Llama, GPT-2, ...)."""
    inner = unwrap_peft(model)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    if head is None:
        raise InputError("insight.err.no_head")
    body = getattr(inner, "base_model", inner)
    for owner in (body, getattr(body, "decoder", None)):
        for name in NORM_NAMES:
            module = getattr(owner, name, None) if owner is not None else None
            if module is not None and callable(module):
                return module, name, head
    return None, "", head


class LogitLensTask(Task[LensInput, LensResult]):
    """Tokenize (cut to the cap with a note), run with hidden states, decode every layer through norm and head."""

    def __init__(self, loaded: LoadedModel, limits: Limits | None = None) -> None:
        super().__init__(loaded)
        self.limits = limits or Limits()
        self.inner = unwrap_peft(self.model)
        self.norm, self.norm_name, self.head = lens_parts(self.model)

    def preprocess(self, inputs: LensInput) -> dict:
        text, cut = self.limits.cut((inputs.text or "").strip())
        if not text:
            raise InputError("insight.err.empty")
        cap = clamp_tokens(inputs.max_tokens)
        ids = self.tokenizer(text)["input_ids"]
        notes = [cut] if cut is not None else []
        if len(ids) > cap:
            notes.insert(0, Msg.of("insight.note.tokens_cut", total=len(ids), kept=cap))
        import torch

        kept = torch.tensor([ids[:cap]], device=self.inner.device)
        return {"ids": kept, "total": len(ids), "notes": notes}

    def forward(self, batch: dict) -> dict:
        """One forward pass with hidden states; then every layer's rows through the norm and the head, in chunks.

        No softmax copy is kept: per row only the top token, the log-sum-exp (for probabilities), the final
        token's logit and its rank are taken from each chunk of logits.
        """
        import torch

        out = self.inner(input_ids=batch["ids"], output_hidden_states=True, return_dict=True, use_cache=False)
        final_logits = out.logits[0].float()
        positions = final_logits.shape[0]
        final = final_logits.argmax(-1)  # (positions,) the greedy next token
        hidden = torch.cat([h[0] for h in out.hidden_states[:-1]])  # (layers * positions, width)
        hidden = self.norm(hidden) if self.norm is not None else hidden
        chosen_ids = final.repeat(len(out.hidden_states) - 1)
        rows = max(1, LENS_CHUNK_VALUES // max(1, final_logits.shape[-1]))
        parts = [_lens_stats(self.head(hidden[s:s + rows]).float(), chosen_ids[s:s + rows])
                 for s in range(0, hidden.shape[0], rows)]
        parts.append(_lens_stats(final_logits, final))
        top_ids, top_probs, ranks, final_probs = (torch.cat(xs).reshape(-1, positions).cpu().numpy()
                                                  for xs in zip(*parts, strict=True))
        return {**batch, "top_ids": top_ids, "top_probs": top_probs.astype(np.float32), "ranks": ranks,
                "final_probs": final_probs.astype(np.float32)}

    def postprocess(self, outputs: dict) -> LensResult:
        ids = outputs["ids"][0].tolist()
        decode = self.tokenizer.decode
        top_ids = outputs["top_ids"].astype(np.int64)
        return LensResult(
            tokens=[pretty(decode([i])) for i in ids],
            top_ids=top_ids,
            top_tokens=[[pretty(decode([int(i)])) for i in row] for row in top_ids],
            top_probs=outputs["top_probs"],
            final_ranks=outputs["ranks"].astype(np.int64),
            final_probs=outputs["final_probs"],
            total_tokens=int(outputs["total"]),
            described=describe(self.loaded, METHOD),
            norm=self.norm_name,
            notes=list(outputs["notes"]),
        )


def _lens_stats(logits: Any, chosen: Any) -> tuple[Any, Any, Any, Any]:
    """Per row of ``logits`` (rows, vocab): top id, its probability, the rank of ``chosen`` and its probability."""
    import torch

    best = logits.max(dim=-1)
    norm = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, chosen[:, None])
    rank = (logits > picked).sum(-1) + 1
    return best.indices, torch.exp(best.values - norm), rank, torch.exp(picked[:, 0] - norm)


def logit_lens(manager: ModelManager, ref: str, request: LensInput, progress: Any = None,
               limits: Limits | None = None) -> LensResult:
    """Load ``ref`` as a causal LM and run the lens on ``request``."""
    return LogitLensTask(load_causal_lm(manager, ref, progress), limits)(request)


@dataclass
class LensComparison:
    """Base model and adapter on the same text: where each one's final answer first becomes top-1."""

    base: LensResult
    adapter: LensResult

    def rows(self) -> list[dict[str, Any]]:
        """Per position: the two final answers and the first layer at which each becomes top-1."""
        first_a, first_b = self.base.first_top(), self.adapter.first_top()
        return [{"position": i, "token": tok, "base_answer": self.base.final_tokens[i],
                 "adapter_answer": self.adapter.final_tokens[i], "base_layer": first_a[i],
                 "adapter_layer": first_b[i]}
                for i, tok in enumerate(self.base.tokens[: self.adapter.num_positions])]
