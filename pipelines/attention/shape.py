"""A model's layers and heads read from its ``config.json``, without loading weights (for the tab's sliders)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config import AppConfig
from pipelines.errors import WorkbenchError

LAYER_FIELDS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
HEAD_FIELDS = ("num_attention_heads", "n_head", "num_heads", "n_heads")


@dataclass(frozen=True)
class ModelShape:
    """How many layers and heads per layer a model's attention has."""

    layers: int
    heads: int


def shape_from_config(config: dict[str, Any]) -> ModelShape | None:
    """Layers and heads from a transformers config dict (the text config of multimodal models), or None."""
    config = config.get("text_config") or config
    layers = next((config[f] for f in LAYER_FIELDS if isinstance(config.get(f), int) and config[f] > 0), None)
    heads = next((config[f] for f in HEAD_FIELDS if isinstance(config.get(f), int) and config[f] > 0), None)
    return ModelShape(layers, heads) if layers and heads else None


def _config_file(ref: str, config: AppConfig) -> Path | None:
    """The config.json of ``ref`` (for an adapter run: of its base model) if it is on this machine.

    Embedded and local models have it in their folder; a Hub model only if it is already in the local cache
    (looked up without touching the network). None for spaCy pipelines and models not downloaded yet.
    """
    from pipelines.models import refs
    from pipelines.models.embedded import cached_gguf_dir, source_path

    resolved = refs.resolve(ref, config)
    base = resolved.base or resolved
    if base.embedded is not None:
        if base.embedded.fmt == "gguf":
            return cached_gguf_dir(base.embedded, config.cache_dir) / "config.json"
        return source_path(base.embedded) / "config.json" if base.embedded.fmt == "folder" else None
    if base.source == "local":
        return Path(base.location) / "config.json"
    if base.source == "hub":
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(base.location, "config.json")
        return Path(cached) if isinstance(cached, str) else None
    return None


def model_shape(ref: str, config: AppConfig) -> ModelShape | None:
    """The shape of ``ref`` from its config.json, or None when it cannot be known without loading the model."""
    try:
        path = _config_file(ref, config)
        if path is None:
            return None
        return shape_from_config(json.loads(path.read_text(encoding="utf-8")))
    except (WorkbenchError, OSError, ValueError, AttributeError):
        return None
