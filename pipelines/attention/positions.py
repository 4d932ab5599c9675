"""Position information of a model as a (positions, dims) table: learned, sinusoidal or rotary (RoPE)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from pipelines.attention.extract import unwrap_peft
from pipelines.messages import Msg

MAX_POSITIONS = 512
LEARNED_NAMES = ("position_embeddings", "wpe", "embed_positions", "pos_embed", "position_embedding")


class PositionKind(StrEnum):
    """How a model encodes positions."""

    LEARNED = "learned"
    SINUSOIDAL = "sinusoidal"
    ROTARY = "rotary"
    RELATIVE = "relative"
    NONE = "none"

    @property
    def msg(self) -> Msg:
        return Msg.of(f"attention.pos_kind.{self.value}")


@dataclass
class PositionTable:
    """What kind of position encoding the model uses and its table (None when there is none to show)."""

    kind: PositionKind
    table: np.ndarray | None  # (positions, dims)
    description: Msg
    x_title: str = "attention.fig.dimension"  # locale key of the x axis


def sinusoidal_table(positions: int, dims: int) -> np.ndarray:
    """The Transformer's sin/cos table (Vaswani et al. 2017): sin on even, cos on odd dimensions."""
    pos = np.arange(positions)[:, None]
    rates = 1.0 / np.power(10000.0, (2 * (np.arange(dims) // 2)) / dims)
    angles = pos * rates[None, :]
    table = np.empty((positions, dims))
    table[:, 0::2] = np.sin(angles[:, 0::2])
    table[:, 1::2] = np.cos(angles[:, 1::2])
    return table.astype(np.float32)


def rotary_table(positions: int, head_dim: int, theta: float) -> np.ndarray:
    """RoPE's [cos | sin] table: one frequency per pair of dimensions of a head."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2) / head_dim))
    angles = np.arange(positions)[:, None] * inv_freq[None, :]
    return np.concatenate([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def _rope_theta(config: Any) -> float | None:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if isinstance(params, dict) and params.get("rope_theta"):
        return float(params["rope_theta"])
    theta = getattr(config, "rope_theta", None)
    return float(theta) if theta else None


def _model_rotary(model: Any, positions: int) -> np.ndarray | None:
    """Ask the model's own rotary module for cos/sin (respects its RoPE scaling); None if it has none."""
    import torch

    module = next((m for name, m in model.named_modules() if name.endswith("rotary_emb")), None)
    if module is None:
        return None
    try:
        param = next(model.parameters())
        probe = torch.zeros(1, positions, 1, dtype=torch.float32, device=param.device)
        with torch.inference_mode():
            cos, sin = module(probe, torch.arange(positions, device=param.device)[None, :])
    except Exception:  # noqa: BLE001 - fall back to the textbook formula
        return None
    half = cos.shape[-1] // 2  # HF duplicates each frequency: [f0..fk, f0..fk]
    return torch.cat([cos[0, :, :half], sin[0, :, :half]], dim=-1).float().cpu().numpy()


def position_table(model: Any, positions: int = MAX_POSITIONS) -> PositionTable:
    """Find the model's position encoding and return it as a table of at most ``positions`` rows."""
    import torch

    inner = unwrap_peft(model)
    config = getattr(inner, "config", None)
    for name, module in inner.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if "sinusoidal" in type(module).__name__.lower():
            dims = int(getattr(config, "hidden_size", None) or getattr(config, "d_model", 0) or 64)
            return PositionTable(
                PositionKind.SINUSOIDAL, sinusoidal_table(positions, dims),
                Msg.of("attention.pos.sinusoidal", positions=positions, dims=dims),
            )
        if leaf in LEARNED_NAMES and isinstance(module, torch.nn.Embedding):
            weight = module.weight.detach()[:positions].float().cpu().numpy()
            return PositionTable(
                PositionKind.LEARNED, weight,
                Msg.of("attention.pos.learned", name=name, shown=weight.shape[0], total=module.num_embeddings,
                       dims=weight.shape[1]),
            )
    theta = _rope_theta(config)
    has_rotary = any(n.endswith("rotary_emb") for n, _ in inner.named_modules())
    if theta is not None or has_rotary:
        heads = int(getattr(config, "num_attention_heads", 1) or 1)
        head_dim = int(getattr(config, "head_dim", None) or getattr(config, "hidden_size", 64) // heads)
        table = _model_rotary(inner, positions)
        if table is None:
            table = rotary_table(positions, head_dim, theta or 10000.0)
        return PositionTable(
            PositionKind.ROTARY, table,
            Msg.of("attention.pos.rotary", theta=f"{theta or 10000:g}", positions=positions,
                   freqs=table.shape[1] // 2, head_dim=head_dim),
            x_title="attention.fig.frequency",
        )
    if getattr(config, "relative_attention_num_buckets", None):
        return PositionTable(PositionKind.RELATIVE, None, Msg.of("attention.pos.relative"))
    return PositionTable(PositionKind.NONE, None, Msg.of("attention.pos.none"))
