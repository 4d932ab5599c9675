"""How many tokens a model can read: the smallest of the tokenizer's and the config's limits."""

from __future__ import annotations

from pipelines.models.manager import LoadedModel


def input_limit(loaded: LoadedModel, cap: int, default: int = 512) -> int:
    """Max input tokens for ``loaded``, at most ``cap`` (absurd 'no limit' values are ignored)."""
    cfg = getattr(loaded.model, "config", None)
    values = [getattr(loaded.tokenizer, "model_max_length", None)]
    values += [getattr(cfg, name, None) for name in ("max_position_embeddings", "n_positions")]
    usable = [int(v) for v in values if isinstance(v, int) and 0 < v < 1_000_000]
    return min(cap, min(usable) if usable else default)
