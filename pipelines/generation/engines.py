"""Which engine answers a causal LM: transformers in this process, or llama.cpp for a GGUF model on a CPU.

``resolve_engine`` turns the user's choice (``auto`` by default) into the engine that will answer; views that need
the model's internals (attention, logit lens, attributions) ask with ``needs_internals=True`` and always get
transformers.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Engine(StrEnum):
    """The engine choice offered for causal LMs."""

    AUTO = "auto"
    TRANSFORMERS = "transformers"
    LLAMACPP = "llama.cpp"


def resolve_engine(ctx: Any, ref: str, engine: str = Engine.AUTO, needs_internals: bool = False) -> Engine:
    """The engine that answers ``ref`` for this choice (transformers until the llama.cpp engine lands)."""
    return Engine.TRANSFORMERS
