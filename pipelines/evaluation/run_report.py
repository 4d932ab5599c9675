"""A fine-tuning run as one self-contained HTML page: settings, data summary, loss curves, evaluations and the
environment. plotly.js is inlined, so the page opens offline. Evaluations of ``run:<id>`` made in the Evaluate
tab are appended to the run's ``evaluations.jsonl`` and listed here."""

from __future__ import annotations

import html
import json
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.messages import render

if TYPE_CHECKING:
    from pipelines.training.store import RunInfo, RunStore

EVALUATIONS = "evaluations.jsonl"
VAL_KEYS = ("training.log.eval_cls", "training.log.eval_lm")  # the log lines of each validation
PACKAGES = ("torch", "transformers", "peft", "gradio", "scikit-learn", "sacrebleu", "rouge-score")
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


def _evaluations(run: RunInfo) -> list[dict]:
    path = run.path / EVALUATIONS
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _table(rows: list[tuple[Any, Any]], head: tuple[str, str] | None = None) -> str:
    header = f"<tr><th>{html.escape(head[0])}</th><th>{html.escape(head[1])}</th></tr>" if head else ""
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_value(v))}</td></tr>" for k, v in rows)
    return f"<table>{header}{body}</table>"


def _value(v: Any) -> str:
    if isinstance(v, dict) and "value" in v:
        return f"{v['value']} [{v.get('low')}, {v.get('high')}]" if "low" in v else str(v["value"])
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else str(v)


def environment() -> list[tuple[str, str]]:
    """Python, platform and the versions of the packages that shape a run's numbers."""
    rows = [("python", platform.python_version()), ("platform", platform.platform())]
    for name in PACKAGES:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return rows


def _loss_html(run: RunInfo, lang: str) -> str:
    from pipelines.training.charts import loss_figure
    from pipelines.training.writer import read_log

    records = read_log(run)
    train = [(r["step"], r["loss"]) for r in records if r.get("event") == "step" and "loss" in r]
    val = [(int(r["step"]), float(r["loss"])) for r in records
           if r.get("key") in VAL_KEYS and "step" in r and "loss" in r]
    if not train and not val:
        return f"<p>{html.escape(render('evaluate.report_no_curve', lang))}</p>"
    return loss_figure(train, val, lang=lang).to_html(include_plotlyjs=True, full_html=False)


def run_report_html(store: RunStore, run_id: str, lang: str = "en") -> str:
    """The whole report page for ``run_id`` (any status) in ``lang``."""
    run = store.find(run_id)
    meta = json.loads((run.path / "run.json").read_text(encoding="utf-8"))
    r = lambda key: html.escape(render(key, lang))  # noqa: E731 - a short local alias
    about = [("id", run.id), ("name", run.name), ("task", run.task), ("base_model", run.base_model),
             ("status", str(run.status)), ("created", run.created), ("labels", ", ".join(run.labels))]
    evaluations = "".join(
        f"<h3>{html.escape(str(e.get('created', '')))} — {html.escape(str(e.get('task')))}, {e.get('rows')} "
        f"{r('evaluate.report_rows')}</h3>{_table(list(e.get('metrics', {}).items()))}" for e in _evaluations(run))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(run.name or run.id)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{r('evaluate.report_title')}: {html.escape(run.name or run.id)}</h1>"
        f"{_table(about)}<h2>{r('evaluate.report_settings')}</h2>{_table(sorted(run.settings.items()))}"
        f"<h2>{r('evaluate.report_data')}</h2>{_table(sorted((meta.get('data') or {}).items()))}"
        f"<h2>{r('evaluate.report_loss')}</h2>{_loss_html(run, lang)}"
        f"<h2>{r('evaluate.report_metrics')}</h2>{_table(sorted(run.metrics.items()))}"
        f"<h2>{r('evaluate.report_evaluations')}</h2>"
        f"{evaluations or '<p>' + r('evaluate.report_no_evaluations') + '</p>'}"
        f"<h2>{r('evaluate.report_environment')}</h2>{_table(environment())}</body></html>"
    )


def write_run_report(store: RunStore, run_id: str, lang: str = "en", folder: str | Path | None = None) -> Path:
    """Write ``<run>-report.html`` into ``folder`` (a new temp folder by default) and return its path."""
    page = run_report_html(store, run_id, lang)
    folder = Path(folder or tempfile.mkdtemp(prefix="lmw-report-"))
    path = folder / f"{store.find(run_id).id}-report.html"
    path.write_text(page, encoding="utf-8")
    return path
