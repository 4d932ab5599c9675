"""Saving the insight views as images: PNG and SVG for plotly figures, SVG and HTML for the shaded-text views.

Gradio's ``gr.Plot`` sends ``figure.to_json()`` to the page and passes its ``config`` key to ``Plotly.react``;
:class:`ExportFigure` adds that key, so the camera button saves ``<name>.png`` (plotly.js renders it in the
browser, offline). It is still a ``go.Figure`` everywhere else. The page script :func:`svg_button_js` adds an SVG
button beside it (plotly.js's ``downloadImage`` with ``format: "svg"``). The shaded-text views are drawn as SVG
here, server-side (:func:`shaded_svg`), and written with a standalone HTML page (:func:`write_downloads`).
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


SVG_WIDTH = 900  # pixels of one line of shaded tokens
SVG_FONT = 13  # font size in pixels (monospace: about 0.6 em per character)
SVG_LINE = 26  # pixels per line


def _rgb_alpha(css: str) -> tuple[str, str]:
    """``rgba(r,g,b,a)`` as an SVG fill ``rgb(r,g,b)`` and its opacity (SVG 1.1 has no rgba colours)."""
    inner = css[css.index("(") + 1: css.rindex(")")].split(",")
    return f"rgb({','.join(inner[:3])})", inner[3] if len(inner) > 3 else "1"


def shaded_svg(tokens: list[str], scores: list[float], caption: str = "", shade: Any = None) -> str:
    """The shaded-text view as a standalone SVG image: the tokens in reading order, wrapped into lines, each on a
    box coloured by its score (``shade(score, bound) -> css colour``), the caption above."""
    from html import escape

    bound = max((abs(float(s)) for s in scores), default=0.0)
    char = SVG_FONT * 0.6
    pad, x, y = 8, 8.0, SVG_LINE * (2 if caption else 1)
    parts = [f"<text x='{pad}' y='{SVG_LINE - 8}' font-size='{SVG_FONT}'>{escape(caption)}</text>"] if caption else []
    for i, (token, score) in enumerate(zip(tokens, scores, strict=True)):
        width = max(1, len(token)) * char + 4
        if x + width > SVG_WIDTH - pad and x > pad:
            x, y = float(pad), y + SVG_LINE
        fill, opacity = _rgb_alpha(shade(float(score), bound)) if shade else ("rgb(255,255,255)", "0")
        parts.append(f"<g data-index='{i}'><title>{float(score):+.4f}</title>"
                     f"<rect x='{x:.1f}' y='{y - SVG_FONT - 3}' width='{width:.1f}' height='{SVG_FONT + 8}' rx='3' "
                     f"fill='{fill}' fill-opacity='{opacity}'/>"
                     f"<text x='{x + 2:.1f}' y='{y}' font-size='{SVG_FONT}' xml:space='preserve'>{escape(token)}</text>"
                     "</g>")
        x += width + 2
    height = int(y + SVG_LINE / 2)
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{SVG_WIDTH}' height='{height}' "
            f"viewBox='0 0 {SVG_WIDTH} {height}' font-family='ui-monospace, Menlo, Consolas, monospace'>"
            f"<rect width='100%' height='100%' fill='white'/>{''.join(parts)}</svg>")


def write_downloads(prefix: str, page: tuple[str, str], images: dict[str, str]) -> tuple[str, list[str]]:
    """Write an HTML page (``(file name, html)``) and SVG images (``{file name: svg}``) into a new temporary
    folder; their paths."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    html_path = folder / page[0]
    html_path.write_text(page[1], encoding="utf-8")
    paths = []
    for name, svg in images.items():
        path = folder / name
        path.write_text(svg, encoding="utf-8")
        paths.append(str(path))
    return str(html_path), paths


# Page script: every plotly view whose layout names its export (META_KEY) gets a second image button beside
# plotly's PNG camera, saving ``<name>.svg`` through plotly.js's own ``downloadImage`` (offline, in the browser).
# ``__TITLES__`` is replaced by ``{language: button title}``.
SVG_BUTTON_JS = """
if (!window.__lmwSvgExport) {
  window.__lmwSvgExport = true;
  const titles = __TITLES__;
  const lang = (document.documentElement.lang || navigator.language || 'en').toLowerCase().startsWith('zh')
    ? 'zh-CN' : 'en';
  const icon = '<svg class="icon" viewBox="0 0 1000 1000" height="1em" width="1em"><path fill="none" '
    + 'stroke="currentColor" stroke-width="90" d="M500 80v560M280 430l220 220 220-220M120 880h760"/></svg>';
  const add = () => document.querySelectorAll('.js-plotly-plot').forEach((gd) => {
    const stem = gd.layout && gd.layout.meta && gd.layout.meta.__META__;
    const group = gd.querySelector('.modebar-group');
    if (!stem || !group || group.querySelector('.lmw-svg-export') || !window.Plotly) return;
    const button = document.createElement('a');
    button.className = 'modebar-btn lmw-svg-export';
    button.setAttribute('rel', 'tooltip');
    button.setAttribute('data-title', titles[lang] || titles.en);
    button.innerHTML = icon;
    button.addEventListener('click', () => window.Plotly.downloadImage(gd, {format: 'svg', filename: stem}));
    group.prepend(button);
  });
  new MutationObserver(add).observe(document.body, {childList: true, subtree: true});
  add();
}
"""


def svg_button_js(titles: dict[str, str]) -> str:
    """The page script adding the "download as SVG" button to exportable plots (``titles``: per language)."""
    return SVG_BUTTON_JS.replace("__TITLES__", json.dumps(titles)).replace("__META__", META_KEY)
