"""A causal LM as an evaluated model: batched greedy generation and batched teacher-forced log-likelihoods.

``nll_segments`` scores token sequences where only positions from ``start`` on count (a reference after its
prompt; a window's new tokens after its overlap), so reference perplexity and sliding-window perplexity are the
same batched computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.limits import token_limit
from pipelines.tasks.batch import length_sorted_batches
from pipelines.tasks.lm_prompting import render_prompt

if TYPE_CHECKING:
    from pipelines.models.manager import LoadedModel


@dataclass(frozen=True)
class Segment:
    """Token ids of which positions ``start..`` are scored (each predicted from the ones before it)."""

    ids: tuple[int, ...]
    start: int = 1


@dataclass(frozen=True)
class Nll:
    """Total negative log-likelihood (nats) of ``tokens`` scored tokens."""

    total: float
    tokens: int

    def __add__(self, other: Nll) -> Nll:
        return Nll(self.total + other.total, self.tokens + other.tokens)

    @property
    def perplexity(self) -> float:
        return math.exp(self.total / self.tokens) if self.tokens else float("nan")

    @property
    def bits_per_token(self) -> float:
        return self.total / self.tokens / math.log(2) if self.tokens else float("nan")


def windows(ids: list[int], size: int, stride: int) -> list[Segment]:
    """Sliding windows over ``ids`` (Hugging Face's perplexity recipe): windows of up to ``size`` tokens start
    ``stride`` apart, and each scores only the tokens no earlier window scored (token 0 has no context)."""
    size = max(2, size)
    stride = max(1, min(stride, size - 1))
    out: list[Segment] = []
    scored = 1
    for begin in range(0, max(1, len(ids) - 1), stride):
        end = min(begin + size, len(ids))
        if end > scored:
            out.append(Segment(tuple(ids[begin:end]), start=scored - begin))
            scored = end
        if end == len(ids):
            break
    return out


class CausalScorer:
    """Generation and scoring with one loaded causal LM (batched, length-sorted, no gradients)."""

    def __init__(self, loaded: LoadedModel, batch_size: int = 8, max_tokens: int = 1024) -> None:
        self.loaded, self.model, self.tokenizer = loaded, loaded.model, loaded.tokenizer
        self.batch_size = max(1, batch_size)
        self.context = token_limit(loaded, max_tokens)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id or 0

    # ---- prompts ---------------------------------------------------------------------------------------------
    def prompt_ids(self, prompt: str, room: int) -> list[int]:
        """The chat-formatted prompt's ids (when the tokenizer has a chat template), its start cut to ``room``."""
        text = render_prompt(self.tokenizer, prompt)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[-max(1, room):]

    def ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text or "", add_special_tokens=False)["input_ids"])

    # ---- log-likelihoods -------------------------------------------------------------------------------------
    def nll_segments(self, segments: list[Segment]) -> list[Nll]:
        """Summed NLL of every segment's scored tokens, in mini-batches of similar length (right padded)."""
        import torch

        out: list[Nll] = [Nll(0.0, 0)] * len(segments)
        device = self.loaded.device
        for idx in length_sorted_batches([len(s.ids) for s in segments], self.batch_size):
            width = max(len(segments[i].ids) for i in idx)
            ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = segments[i].ids
                ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, : len(seq)] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
            for row, i in enumerate(idx):
                seg = segments[i]
                first = max(1, seg.start)
                scored = logp[row, first - 1: len(seg.ids) - 1]
                out[i] = Nll(float(-scored.sum()), int(scored.numel()))
        return out

    def reference_nll(self, prompts: list[str], references: list[str]) -> list[Nll]:
        """NLL of each reference given its (chat-formatted) prompt: teacher forcing, batched."""
        segments = []
        for prompt, reference in zip(prompts, references, strict=True):
            ref = self.ids(reference)[: self.context - 1]
            head = self.prompt_ids(prompt, self.context - len(ref))
            segments.append(Segment(tuple(head + ref), start=len(head)))
        return self.nll_segments(segments)

    def text_nll(self, texts: list[str], stride: int | None = None) -> list[Nll]:
        """NLL of each whole text (tokens 2..n), with sliding windows for texts longer than the context."""
        stride = stride or max(1, self.context // 2)
        pieces, owner = [], []
        for row, text in enumerate(texts):
            for seg in windows(self.ids(text), self.context, stride):
                pieces.append(seg)
                owner.append(row)
        totals = [Nll(0.0, 0) for _ in texts]
        for row, nll in zip(owner, self.nll_segments(pieces), strict=True):
            totals[row] = totals[row] + nll
        return totals

    # ---- generation ------------------------------------------------------------------------------------------
    def generate(self, prompts: list[str], max_new_tokens: int = 64) -> list[str]:
        """Greedy replies to ``prompts`` (left-padded mini-batches of similar length), in input order."""
        import torch

        encoded = [self.prompt_ids(p, self.context - max_new_tokens) for p in prompts]
        out = [""] * len(prompts)
        for idx in length_sorted_batches([len(e) for e in encoded], self.batch_size):
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = encoded[i]
                ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
                mask[row, width - len(seq):] = 1
            device = self.loaded.device
            with torch.inference_mode():
                gen = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                          **self.greedy(max_new_tokens))
            for row, i in enumerate(idx):
                out[i] = self.tokenizer.decode(gen[row, width:], skip_special_tokens=True).strip()
        return out

    def greedy(self, max_new_tokens: int) -> dict[str, Any]:
        from transformers import GenerationConfig

        config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=self.pad_id,
                                  eos_token_id=self.model.generation_config.eos_token_id)
        return {"generation_config": config}
