"""A fine-tuning run as Markdown, for a model card: the same blocks as the HTML report (``report_blocks.py``),
with the loss curve as a short summary and a table of validation points instead of a plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.evaluation.report_blocks import Block, Heading, LossCurve, Para, Table, curve_summary, report_blocks
from pipelines.evaluation.report_data import collect
from pipelines.messages import render

if TYPE_CHECKING:
    from pipelines.training.store import RunStore


def md_text(text: str) -> str:
    """Text safe in a Markdown table cell or paragraph: pipes escaped, line breaks as ``<br>``."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")


def md_table(table: Table, lang: str) -> str:
    head = table.head or [render("evaluate.report_column_name", lang), render("evaluate.report_column_value", lang)]
    lines = ["| " + " | ".join(md_text(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def block_markdown(block: Block, lang: str) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {md_text(block.text)}"
    if isinstance(block, Para):
        return md_text(block.text)
    if isinstance(block, Table):
        return md_table(block, lang)
    if isinstance(block, LossCurve):
        return "\n\n".join(block_markdown(b, lang) for b in curve_summary(block, lang))
    return ""


def run_report_markdown(store: RunStore, run_id: str, lang: str = "en") -> str:
    """The report of ``run_id`` (any status) as Markdown in ``lang``."""
    blocks = report_blocks(collect(store, run_id), lang)
    body = "\n\n".join(block_markdown(b, lang) for b in blocks)
    return f"{body}\n\n---\n\n{md_text(render('evaluate.report_card_note', lang))}\n"


def write_run_markdown(store: RunStore, run_id: str, lang: str = "en", folder: str | Path | None = None) -> Path:
    """Write ``<run>-report.md`` into ``folder`` (a new temp folder by default) and return its path."""
    from pipelines.evaluation.run_report import save_report

    return save_report(store, run_id, run_report_markdown(store, run_id, lang), "md", folder)
