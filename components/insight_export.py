"""The "download plot as SVG" button of the insight views' plots: a page script installed once per page, which
puts the button beside plotly's PNG camera on every plot that names its export (see
:mod:`pipelines.insight.export`)."""

from __future__ import annotations

import gradio as gr

from components.i18n import text
from pipelines.insight.export import svg_button_js
from pipelines.messages import LANGUAGES


def svg_export_script() -> gr.HTML:
    """An empty HTML block whose load script adds the SVG buttons (placing it again on a page is harmless)."""
    titles = {lang: text("insight.export.svg_title", lang) for lang in LANGUAGES}
    return gr.HTML("", js_on_load=svg_button_js(titles), padding=False, elem_classes=["lmw-svg-export-js"])
