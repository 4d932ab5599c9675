"""The live batch of the decode batcher: several sequences, one left-padded KV cache, one forward pass per step.

New requests are prefilled together (left-padded) and their cache is merged into the running one by padding the
shorter of the two on the left; every row's attention mask hides its padding and its position ids count only
its own tokens, so each row sees exactly what it would see alone. Finished rows leave between steps, and the
leading columns that only padding uses any more are trimmed.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import torch

from pipelines.generation.batcher_rows import BatchRequest
from pipelines.generation.streaming import TOP_K_ALTERNATIVES

Tick = Callable[[], None]


def mergeable(cache: Any) -> bool:
    """True when every layer of ``cache`` is a plain growing key/value cache (rows can be joined and dropped)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    layers = getattr(cache, "layers", None)
    return isinstance(cache, DynamicCache) and bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _left_pad(tensor: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """``tensor`` with ``pad`` zeros in front along ``dim``."""
    if pad <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = pad
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class DecodeBatch:
    """Rows decoding together on one model; every method runs in the compute thread under inference mode."""

    def __init__(self, model: Any, pad_id: int, tick: Tick | None = None) -> None:
        self.model = model
        self.pad_id = pad_id
        self.tick = tick or (lambda: None)
        self.device = next(model.parameters()).device
        self.rows: list[BatchRequest] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # rows x cached positions (1 = real token, 0 = padding)
        self.joinable = True  # False for caches that cannot be padded and joined (sliding windows, recurrent state)
        self.forward_kwargs = self._forward_kwargs(model)

    @staticmethod
    def _forward_kwargs(model: Any) -> dict[str, Any]:
        """``logits_to_keep=1`` where the model takes it (no full-vocabulary logits for every prompt position)."""
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        try:
            takes = "logits_to_keep" in inspect.signature(inner.forward).parameters
        except (TypeError, ValueError):
            takes = False
        return {"logits_to_keep": 1} if takes else {}

    @property
    def empty(self) -> bool:
        return not self.rows

    def cache_bytes(self, more_rows: int = 0, width: int = 0) -> int:
        """Bytes of the key/value cache, or what it would hold with ``more_rows`` rows of prompts up to ``width``
        tokens joined (every row is padded to the longest)."""
        if self.cache is None or self.mask is None or not self.joinable:
            return 0
        per_position = sum(2 * layer.keys.element_size() * layer.keys.shape[1] * layer.keys.shape[3]
                           for layer in self.cache.layers)
        return (len(self.rows) + more_rows) * max(self.mask.shape[1], width) * per_position

    def admit(self, requests: list[BatchRequest]) -> None:
        """Prefill ``requests`` in one forward pass, merge them into the batch and emit their first tokens."""
        width = max(len(r.prompt_ids) for r in requests)
        ids = [[self.pad_id] * (width - len(r.prompt_ids)) + r.prompt_ids for r in requests]
        mask = [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in requests]
        input_ids = torch.tensor(ids, dtype=torch.long, device=self.device)
        attention = torch.tensor(mask, dtype=torch.long, device=self.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        now = time.perf_counter()
        for request in requests:
            request.started[0] = now
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True,
                         **self.forward_kwargs)
        logits = out.logits[:, -1, :].to(dtype=torch.float32)
        if self.cache is None:
            self.cache, self.mask = out.past_key_values, attention
            self.joinable = mergeable(self.cache)
        else:
            self._merge(out.past_key_values, attention)
        self.rows.extend(requests)
        self._emit(requests, logits)

    def _merge(self, cache: Any, mask: torch.Tensor) -> None:
        """Join a freshly prefilled cache to the running one, left-padding the shorter to the longer."""
        assert self.mask is not None
        old_len, new_len = self.mask.shape[1], mask.shape[1]
        width = max(old_len, new_len)
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_left_pad(old.keys, width - old_len, -2), _left_pad(new.keys, width - new_len, -2)])
            old.values = torch.cat([_left_pad(old.values, width - old_len, -2),
                                    _left_pad(new.values, width - new_len, -2)])
        self.mask = torch.cat([_left_pad(self.mask, width - old_len, 1), _left_pad(mask, width - new_len, 1)])

    def step(self) -> None:
        """One decoding step: every row's last token in one forward pass, then one new token per row."""
        assert self.mask is not None
        last = torch.tensor([[r.generated[-1]] for r in self.rows], dtype=torch.long, device=self.device)
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        positions = self.mask.sum(dim=1, keepdim=True) - 1
        out = self.model(input_ids=last, attention_mask=self.mask, position_ids=positions,
                         past_key_values=self.cache, use_cache=True, **self.forward_kwargs)
        self.cache = out.past_key_values
        self.tick()
        self._emit(self.rows, out.logits[:, -1, :].to(dtype=torch.float32))

    def _emit(self, rows: list[BatchRequest], logits: torch.Tensor) -> None:
        """Choose and stream each row's next token; ``logits`` holds one row per request, in ``rows`` order."""
        probs = torch.softmax(logits, dim=-1)  # the model's own distribution, shown in the token view
        top = torch.topk(probs, min(TOP_K_ALTERNATIVES, probs.shape[-1]))
        top_ids, top_probs = top.indices.tolist(), top.values.tolist()
        greedy = torch.argmax(logits, dim=-1).tolist()
        for i, row in enumerate(rows):
            if row.sampler.plain_greedy:
                token = greedy[i]
            else:
                token = row.sampler.choose(row.ids_tensor(self.device), logits[i : i + 1].clone())
            row.accept(token, float(probs[i, token]), top_ids[i], top_probs[i])

    def release(self) -> None:
        """Let finished (and stopped) rows go: close their streams, drop their cache rows, trim shared padding."""
        leaving = [i for i, r in enumerate(self.rows) if r.done or r.stopped]
        if not leaving:
            return
        for i in leaving:
            self.rows[i].close()
        keep = sorted(set(range(len(self.rows))) - set(leaving))
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.cache = self.mask = None
            return
        assert self.mask is not None
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        used = torch.nonzero(self.mask.any(dim=0))
        first = int(used[0, 0]) if used.numel() else 0
        if first > 0 and self.joinable:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[..., first:, :], layer.values[..., first:, :]
            self.mask = self.mask[:, first:]

    def fail(self, error: BaseException) -> None:
        """A forward pass failed: every row gets the error and the batch is empty."""
        for row in self.rows:
            row.close(error)
        self.rows, self.cache, self.mask = [], None, None
