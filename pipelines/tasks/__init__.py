"""Task pipelines: preprocess -> forward -> postprocess, returning plain data."""

from pipelines.tasks.base import Task

__all__ = ["Task"]
