"""Plotly figures that keep the modebar's "download plot as PNG" with a file name naming the view.

Gradio's ``gr.Plot`` sends ``figure.to_json()`` to the page and passes its ``config`` key to ``Plotly.react``;
this subclass adds that key, so the camera button saves ``<name>.png`` (plotly.js renders it in the browser,
offline). It is still a ``go.Figure`` everywhere else.
"""

from __future__ import annotations

import json
import re
from typing import Any

import plotly.graph_objects as go

META_KEY = "lmw_export"  # where the file name travels (layout.meta survives copies)
SCALE = 2  # exported pixels per screen pixel (sharper images)


def export_config(name: str, fmt: str = "png") -> dict[str, Any]:
    """The plotly.js config that names the downloaded image and keeps the modebar with its image button."""
    return {"displaylogo": False, "displayModeBar": True,
            "toImageButtonOptions": {"format": fmt, "filename": file_stem(name), "scale": SCALE}}


def file_stem(name: str) -> str:
    """A safe file name stem (letters, digits, dashes)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:80] or "figure"


class ExportFigure(go.Figure):
    """A ``go.Figure`` whose JSON carries the plotly.js config of :func:`export_config`."""

    def to_json(self, *args: Any, **kwargs: Any) -> str:
        data = json.loads(super().to_json(*args, **kwargs))
        meta = self.layout.meta if isinstance(self.layout.meta, dict) else {}
        data["config"] = export_config(str(meta.get(META_KEY, "figure")))
        return json.dumps(data)


def exportable(fig: Any, name: str) -> Any:
    """``fig`` as an :class:`ExportFigure` saving ``<name>.png`` (None and non-plotly values pass through)."""
    if not isinstance(fig, go.Figure):
        return fig
    out = fig if isinstance(fig, ExportFigure) else ExportFigure(fig)
    meta = out.layout.meta if isinstance(out.layout.meta, dict) else {}
    out.layout.meta = {**meta, META_KEY: file_stem(name)}
    return out
