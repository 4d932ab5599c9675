"""A fine-tuning run as one self-contained HTML page: settings, data summary, loss curves, validation metrics,
before and after, the baseline, evaluations and the environment (the blocks of ``report_blocks.py``). plotly.js is
inlined, so the page opens offline. Evaluations of ``run:<id>`` made in the Evaluate tab are appended to the run's
``evaluations.jsonl`` and listed here; the Markdown model card (``model_card.py``) shows the same blocks."""

from __future__ import annotations

import html
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.evaluation.report_blocks import Block, Heading, LossCurve, Para, Table, report_blocks
from pipelines.evaluation.report_data import EVALUATIONS, collect
from pipelines.messages import render

if TYPE_CHECKING:
    from pipelines.training.store import RunStore

STYLE = ("body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}table{border-collapse:collapse;"
         "margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}"
         "th{background:#f3f4f6}h1{font-size:1.6rem}")


def record_evaluation(store: RunStore, report: dict[str, Any]) -> None:
    """Append the metrics of every ``run:<id>`` model in ``report`` to that run's ``evaluations.jsonl``."""
    from pipelines.training.writer import now_iso

    for model in report.get("models", []):
        if not str(model).startswith("run:"):
            continue
        try:
            run = store.find(str(model).removeprefix("run:"))
        except Exception:  # noqa: BLE001 - a deleted run just gets no record
            continue
        entry = {"created": now_iso(), "task": report.get("task"), "rows": report.get("rows"),
                 "models": report.get("models"), "metrics": report.get("metrics", {}).get(model, {})}
        with open(run.path / EVALUATIONS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")


def _table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.head) if table.head else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return f"<table>{'<tr>' + head + '</tr>' if head else ''}{body}</table>"


def _loss_html(curve: LossCurve, lang: str) -> str:
    from pipelines.training.charts import loss_figure

    if not curve.train and not curve.val:
        return f"<p>{html.escape(render('evaluate.report_no_curve', lang))}</p>"
    figure = loss_figure(curve.train, curve.val, lang=lang)
    return figure.to_html(include_plotlyjs=True, full_html=False, div_id="loss-curve", config={"responsive": True})


def block_html(block: Block, lang: str) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Table):
        return _table(block)
    return _loss_html(block, lang)


def run_report_html(store: RunStore, run_id: str, lang: str = "en") -> str:
    """The whole report page for ``run_id`` (any status) in ``lang``."""
    data = collect(store, run_id)
    body = "".join(block_html(b, lang) for b in report_blocks(data, lang))
    return (f"<!doctype html><html lang='{html.escape(lang)}'><head><meta charset='utf-8'>"
            f"<title>{html.escape(data.title)}</title><style>{STYLE}</style></head><body>{body}</body></html>")


def save_report(store: RunStore, run_id: str, text: str, suffix: str, folder: str | Path | None = None) -> Path:
    """Write ``text`` as ``<run>-report.<suffix>`` into ``folder`` (a new temp folder by default); its path."""
    folder = Path(folder or tempfile.mkdtemp(prefix="lmw-report-"))
    path = folder / f"{store.find(run_id).id}-report.{suffix}"
    path.write_text(text, encoding="utf-8")
    return path


def write_run_report(store: RunStore, run_id: str, lang: str = "en", folder: str | Path | None = None) -> Path:
    """Write ``<run>-report.html`` into ``folder`` (a new temp folder by default) and return its path."""
    return save_report(store, run_id, run_report_html(store, run_id, lang), "html", folder)


def write_run_reports(store: RunStore, models: list[str], folder: str | Path, lang: str = "en") -> list[str]:
    """The HTML report and the Markdown model card of every ``run:<id>`` in ``models``, written into ``folder``
    (a run that is gone is left out)."""
    from pipelines.errors import WorkbenchError
    from pipelines.evaluation.model_card import write_run_markdown

    files: list[str] = []
    for model in models:
        if not str(model).startswith("run:"):
            continue
        run_id = str(model).removeprefix("run:")
        try:
            html_path = write_run_report(store, run_id, lang, folder)
            files += [str(html_path), str(write_run_markdown(store, run_id, lang, folder))]
        except WorkbenchError:
            continue
    return files
