"""Attention: extraction task, rollout, comparison, position embeddings, bertviz HTML and plotly views."""

from pipelines.attention.analysis import Comparison, compare, rollout
from pipelines.attention.bertviz_html import BertvizOptions, head_view_html, iframe, model_view_html
from pipelines.attention.extract import (
    DEFAULT_MAX_TOKENS,
    HARD_MAX_TOKENS,
    AttentionInput,
    AttentionResult,
    AttentionTask,
    extract,
    load_for_attention,
)
from pipelines.attention.positions import PositionTable, position_table
from pipelines.attention.views import AttentionViews, Selection, attention_json, build_views, plot_views

__all__ = [
    "DEFAULT_MAX_TOKENS", "HARD_MAX_TOKENS", "AttentionInput", "AttentionResult", "AttentionTask", "AttentionViews",
    "BertvizOptions", "Comparison", "PositionTable", "Selection", "attention_json", "build_views", "compare",
    "extract", "head_view_html", "iframe", "load_for_attention", "model_view_html", "plot_views", "position_table",
    "rollout",
]
