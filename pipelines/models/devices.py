"""Device and dtype selection (torch is imported inside the functions, not at start-up)."""

from __future__ import annotations

from typing import Any

from pipelines.errors import ModelLoadError
from pipelines.models.kinds import USER_PRECISIONS, Precision

FLOAT_DTYPES = (Precision.FLOAT32, Precision.BFLOAT16, Precision.FLOAT16)


def torch_dtype(name: str) -> Any:
    """The ``torch.dtype`` of a float precision name (float32 for anything else, e.g. int8 before quantising)."""
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(str(name), torch.float32)


def detect_device(preferred: str = "auto") -> str:
    """Return ``cuda``, ``mps`` or ``cpu``; an explicit but unavailable device falls back to cpu."""
    import torch

    preferred = (preferred or "auto").lower()
    if preferred == "cuda" or (preferred == "auto" and torch.cuda.is_available()):
        return "cuda" if torch.cuda.is_available() else "cpu"
    mps = getattr(torch.backends, "mps", None)
    if preferred == "mps" or (preferred == "auto" and mps is not None and mps.is_available()):
        return "mps" if mps is not None and mps.is_available() else "cpu"
    return "cpu"


def is_auto(dtype: str | None) -> bool:
    """Whether ``dtype`` leaves the precision to the app (``auto`` or nothing)."""
    return not dtype or dtype == Precision.AUTO


def resolve_dtype(dtype: str | None, device: str) -> Precision:
    """Map a dtype name (or ``auto``/None) to a concrete precision for loading weights."""
    if is_auto(dtype):
        if device == "cuda":
            import torch

            return Precision.BFLOAT16 if torch.cuda.is_bf16_supported() else Precision.FLOAT16
        return Precision.FLOAT32
    if dtype not in USER_PRECISIONS:
        raise ModelLoadError("models.error.unknown_dtype", dtype=str(dtype),
                             choices=", ".join(p.value for p in USER_PRECISIONS))
    return Precision(dtype)
