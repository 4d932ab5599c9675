"""Text generation for the Generate tab: settings, precision choice, streaming engine, presets.

The engine (torch, transformers) is imported on first use: ``from pipelines.generation import GenerationEngine``
works, but importing this package at start-up does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from pipelines.generation.results import GenerationResult
from pipelines.generation.service import DEFAULT_SYSTEM, GenerationService
from pipelines.generation.settings import GenerationSettings, Mode, Precision, StopReason

LAZY = frozenset({"GenerationEngine", "NextTokenTask"})  # from pipelines.generation.engine

__all__ = [
    "DEFAULT_SYSTEM", "GenerationEngine", "GenerationResult", "GenerationService", "GenerationSettings", "Mode",
    "NextTokenTask", "Precision", "StopReason",
]


def __getattr__(name: str) -> Any:
    if name in LAZY:
        return getattr(importlib.import_module("pipelines.generation.engine"), name)
    raise AttributeError(name)
