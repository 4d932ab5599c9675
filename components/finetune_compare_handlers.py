"""The "Compare runs" handlers: plain values in, plain values out (a plotly figure, an HTML table, JSON)."""

from __future__ import annotations

import html
from typing import Any

from components.i18n import text
from pipelines.context import AppContext
from pipelines.messages import has_key
from pipelines.training.compare import METRIC_KEYS, Comparison, compare_runs

CHANGED = "background:#fef3c7;font-weight:600"  # a setting that differs between the compared runs


def _label(name: str, lang: str) -> str:
    for key in (f"finetune.s.{name}", f"compare_runs.row.{name}"):
        if has_key(key, lang):
            return text(key, lang)
    return name


def _cell(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.4g}"
    elif isinstance(value, list):
        value = ", ".join(map(str, value)) or "—"
    return html.escape(str(value)) if value not in ("", None) else "—"


class CompareHandlers:
    """What the "Compare runs" accordion does, on plain values."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def choices(self, user: str | None = None) -> list[tuple[str, str]]:
        """(label, run id) of every run the user may see, newest first."""
        runs = self.ctx.runs.list(None) if user is None else self.ctx.runs.list(None, user)
        return [(f"{r.name or r.id} · {r.id}" if r.name and r.name != r.id else r.id, r.id) for r in runs]

    def compare(self, run_ids: Any, user: str | None = None) -> Comparison:
        return compare_runs(self.ctx.runs, run_ids, user)

    def api(self, run_ids: Any, user: str | None = None) -> dict[str, Any]:
        """The comparison as JSON (the ``/compare_runs`` endpoint)."""
        return self.compare(run_ids, user).to_dict()

    def show(self, run_ids: Any, lang: str = "en", user: str | None = None) -> tuple[Any, str]:
        """(loss-curve figure, settings table HTML with the differing rows highlighted)."""
        from pipelines.training.preflight_charts import loss_curves_figure

        found = self.compare(run_ids, user)
        return loss_curves_figure(found.curves, lang), self.table_html(found, lang)

    @staticmethod
    def table_html(found: Comparison, lang: str) -> str:
        head = "".join(f"<th>{html.escape(r['name'])}<br><code>{html.escape(r['id'])}</code></th>" for r in found.runs)
        rows = [f"<tr><th>{html.escape(text('compare_runs.setting', lang))}</th>{head}</tr>"]
        for key in METRIC_KEYS:
            values = [r["metrics"].get(key, "") for r in found.runs]
            if any(v != "" for v in values):
                cells = "".join(f"<td>{_cell(v)}</td>" for v in values)
                rows.append(f"<tr><td><b>{html.escape(_label(key, lang))}</b></td>{cells}</tr>")
        for row in found.settings:
            style = f' style="{CHANGED}" data-differs="1"' if row["differs"] else ""
            cells = "".join(f"<td>{_cell(v)}</td>" for v in row["values"])
            rows.append(f"<tr{style}><td>{html.escape(_label(row['name'], lang))}</td>{cells}</tr>")
        note = text("compare_runs.differences", lang, count=len(found.differences))
        return f"<p>{html.escape(note)}</p><table class='lmw-compare'>{''.join(rows)}</table>"
