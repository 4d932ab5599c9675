"""Model resolution, loading and caching."""

from pipelines.models.embedded import EMBEDDED
from pipelines.models.manager import CacheKey, LoadedModel, ModelManager
from pipelines.models.refs import ModelRef

__all__ = ["EMBEDDED", "CacheKey", "LoadedModel", "ModelManager", "ModelRef"]
