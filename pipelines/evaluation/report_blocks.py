"""A run report as a list of blocks (headings, paragraphs, tables, the loss curve), in one language.

The HTML page and the Markdown model card render the same blocks, so they always show the same sections and
numbers; only the loss curve differs (a Plotly figure in HTML, a short summary and the validation points in
Markdown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.evaluation.report_data import Comparison, RunReportData, cell
from pipelines.messages import has_key, render
from pipelines.training.probes import report_blocks as probe_report_blocks

MAX_CURVE_ROWS = 20


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    """Rows of cells (already report text); ``head`` None: a two-column name/value table."""

    rows: list[list[str]]
    head: list[str] | None = None


@dataclass(frozen=True)
class LossCurve:
    """The loss curves: train ``(step, loss)`` and validation ``(step, loss)`` points."""

    train: list[tuple[int, float]] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)


Block = Heading | Para | Table | LossCurve


def label(name: str, lang: str, prefix: str = "evaluate.metric_") -> str:
    """A metric's (or column's) name in ``lang`` when the app has one, else the name itself."""
    key = f"{prefix}{name}"
    return render(key, lang) if has_key(key) else name


def pairs(items: list[tuple[str, Any]]) -> Table:
    return Table([[str(k), cell(v)] for k, v in items])


def records_table(records: list[dict[str, Any]], lang: str) -> Table:
    """Flat records (examples, per-class scores) as a table with translated column names."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    head = [label(c, lang, "evaluate.column_") if has_key(f"evaluate.column_{c}") else label(c, lang) for c in columns]
    return Table([[cell(r.get(c, "")) for c in columns] for r in records], head)


def comparison_table(comparison: Comparison, lang: str) -> Table:
    """One row per metric: each model's value [95% interval], and the paired p-value when there is one."""
    head = [render("evaluate.report_column_metric", lang), *comparison.models]
    with_p = bool(comparison.p_values) and len(comparison.models) == 2
    if with_p:
        head.append(render("evaluate.report_column_p", lang))
    rows = []
    for name in comparison.metric_names():
        row = [label(name, lang), *(cell(comparison.metrics.get(m, {}).get(name)) for m in comparison.models)]
        if with_p:
            row.append(cell(comparison.p_values.get(name)))
        rows.append(row)
    return Table(rows, head)


def _before_after(data: RunReportData, lang: str) -> list[Block]:
    found = data.before_after
    if found is None:
        return []
    rows = "—" if found.rows is None else found.rows
    blocks: list[Block] = [Heading(render("evaluate.report_before_after", lang)),
                           Para(render("evaluate.report_before_after_note", lang, {"rows": rows})),
                           comparison_table(found, lang)]
    if found.examples:
        blocks += [Heading(render("evaluate.report_examples", lang), 3), records_table(found.examples, lang)]
    return blocks


def _baseline(data: RunReportData, lang: str) -> list[Block]:
    found = data.baseline
    if not found:
        return []
    blocks: list[Block] = [Heading(render("evaluate.report_baseline", lang))]
    if "accuracy" in found and "macro_f1" in found:
        blocks.append(Para(render("evaluate.report_baseline_line", lang,
                                  {"accuracy": cell(found["accuracy"]), "macro_f1": cell(found["macro_f1"])})))
    return [*blocks, Table([[label(k, lang), cell(v)] for k, v in found.items()])]


def _evaluations(data: RunReportData, lang: str) -> list[Block]:
    blocks: list[Block] = [Heading(render("evaluate.report_evaluations", lang))]
    if not data.evaluations:
        return [*blocks, Para(render("evaluate.report_no_evaluations", lang))]
    for e in data.evaluations:
        blocks.append(Heading(f"{e.get('created', '')} — {e.get('task')}, {e.get('rows')} "
                              f"{render('evaluate.report_rows', lang)}", 3))
        metrics = e.get("metrics") if isinstance(e.get("metrics"), dict) else {}
        blocks.append(Table([[label(k, lang), cell(v)] for k, v in metrics.items()]))
    return blocks


def _validation(data: RunReportData, lang: str) -> list[Block]:
    metrics = Table([[label(k, lang), cell(v)] for k, v in data.metrics()])
    blocks: list[Block] = [Heading(render("evaluate.report_metrics", lang)), metrics]
    if data.per_class():
        blocks += [Heading(render("evaluate.per_class", lang), 3), records_table(data.per_class(), lang)]
    if data.generations():
        blocks += [Heading(render("evaluate.report_generations", lang), 3), records_table(data.generations(), lang)]
    return blocks


def report_blocks(data: RunReportData, lang: str = "en") -> list[Block]:
    """The whole report of a run in ``lang``: about, settings, data, loss curves, validation metrics, before and
    after, the baseline, evaluations made in the Evaluate tab, and the environment."""
    return [
        Heading(f"{render('evaluate.report_title', lang)}: {data.title}", 1), pairs(data.about()),
        Heading(render("evaluate.report_settings", lang)), pairs(data.settings()),
        Heading(render("evaluate.report_data", lang)), pairs(data.data_summary()),
        Heading(render("evaluate.report_loss", lang)), LossCurve(data.train_curve, data.val_curve),
        *_validation(data, lang), *_before_after(data, lang), *probe_report_blocks(data.run.metrics, lang),
        *_baseline(data, lang), *_evaluations(data, lang),
        Heading(render("evaluate.report_environment", lang)), pairs(data.environment),
    ]


def curve_summary(curve: LossCurve, lang: str) -> list[Block]:
    """The loss curves as text (Markdown): the first and last train loss, and up to 20 validation points."""
    if not curve.train and not curve.val:
        return [Para(render("evaluate.report_no_curve", lang))]
    blocks: list[Block] = []
    if curve.train:
        (s0, l0), (s1, l1) = curve.train[0], curve.train[-1]
        blocks.append(Para(render("evaluate.report_train_loss", lang, {
            "first": cell(l0), "first_step": s0, "last": cell(l1), "last_step": s1, "count": len(curve.train)})))
    if curve.val:
        step = max(1, -(-len(curve.val) // MAX_CURVE_ROWS))
        shown = curve.val[::step] if curve.val[::step][-1] == curve.val[-1] else [*curve.val[::step], curve.val[-1]]
        head = [render("evaluate.report_column_step", lang), render("evaluate.report_column_val_loss", lang)]
        blocks.append(Table([[str(s), cell(v)] for s, v in shown], head))
    return blocks
