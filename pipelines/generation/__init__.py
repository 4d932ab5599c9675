"""Text generation for the Generate tab: settings, precision choice, streaming engine, presets."""

from pipelines.generation.engine import GenerationEngine, GenerationResult, NextTokenTask
from pipelines.generation.service import DEFAULT_MODEL, DEFAULT_SYSTEM, GenerationService
from pipelines.generation.settings import GenerationSettings

__all__ = [
    "DEFAULT_MODEL", "DEFAULT_SYSTEM", "GenerationEngine", "GenerationResult", "GenerationService",
    "GenerationSettings", "NextTokenTask",
]
