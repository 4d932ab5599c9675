"""Attention: extraction task, rollout, comparison, position embeddings, bertviz HTML and plotly views.

Importing this package does not import torch, transformers or bertviz; :class:`AttentionTask` (which needs torch
through the model manager) is imported on first use.
"""

from __future__ import annotations

from typing import Any

from pipelines.attention.analysis import Comparison, compare, rollout
from pipelines.attention.bertviz_html import BertvizOptions, head_view_html, iframe, model_view_html
from pipelines.attention.extract import (
    DEFAULT_MAX_TOKENS,
    HARD_MAX_TOKENS,
    AttentionInput,
    AttentionPart,
    AttentionResult,
    extract,
    load_for_attention,
)
from pipelines.attention.positions import PositionKind, PositionTable, position_table
from pipelines.attention.views import AttentionViews, Selection, attention_json, build_views, plot_views

__all__ = [
    "DEFAULT_MAX_TOKENS", "HARD_MAX_TOKENS", "AttentionInput", "AttentionPart", "AttentionResult", "AttentionTask",
    "AttentionViews", "BertvizOptions", "Comparison", "PositionKind", "PositionTable", "Selection", "attention_json",
    "build_views", "compare", "extract", "head_view_html", "iframe", "load_for_attention", "model_view_html",
    "plot_views", "position_table", "rollout",
]


def __getattr__(name: str) -> Any:
    """``AttentionTask`` on first use (it imports the model manager, hence torch)."""
    if name == "AttentionTask":
        from pipelines.attention.task import AttentionTask

        return AttentionTask
    raise AttributeError(name)
