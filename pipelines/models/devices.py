"""Device and dtype selection."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def detect_device(preferred: str = "auto") -> str:
    """Return ``cuda``, ``mps`` or ``cpu``; an explicit but unavailable device falls back to cpu."""
    preferred = (preferred or "auto").lower()
    if preferred == "cuda" or (preferred == "auto" and torch.cuda.is_available()):
        return "cuda" if torch.cuda.is_available() else "cpu"
    mps = getattr(torch.backends, "mps", None)
    if preferred == "mps" or (preferred == "auto" and mps is not None and mps.is_available()):
        return "mps" if mps is not None and mps.is_available() else "cpu"
    return "cpu"


def resolve_dtype(dtype: str | None, device: str) -> str:
    """Map a dtype name (or ``auto``/None) to a concrete name for loading weights."""
    if not dtype or dtype == "auto":
        if device == "cuda":
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float32"
    if dtype not in (*DTYPES, "int8"):
        raise ValueError(f"Unknown precision {dtype!r}; choose one of auto, {', '.join(DTYPES)}, int8.")
    return dtype
