"""Plain-data views of a training job and of runs (HTML strings, figures, table rows) for the UI layer."""

from __future__ import annotations

import html
from typing import Any

from pipelines.charts import confusion_figure
from pipelines.runs import RunInfo
from pipelines.training import charts, results
from pipelines.training.job import JobState

RUN_COLUMNS = ["run id", "name", "task", "base model", "status", "created", "metrics"]
CLASS_COLUMNS = ["label", "precision", "recall", "f1", "support"]
GEN_COLUMNS = ["prompt", "before", "after"]


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def progress_html(st: JobState | None) -> str:
    """A progress bar with step, epoch, throughput, ETA, device and status."""
    if st is None:
        return "<div id='ft-progress-text'>No training yet.</div>"
    fraction = st.step / st.total_steps if st.total_steps else 0.0
    speed = f"{st.samples_per_s:.1f} samples/s"
    if st.task == "causal-lm":
        speed += f" · {st.tokens_per_s:.0f} tokens/s"
    eta = "done" if st.finished else f"ETA {clock(st.eta_s)}"
    parts = [f"{st.status}", f"step {st.step}/{st.total_steps or '?'}", f"epoch {st.epoch:.2f}", speed, eta,
             f"{st.device.upper()} {st.precision}"]
    color = {"failed": "#dc2626", "stopped": "#d97706", "complete": "#16a34a"}.get(st.status, "#2563eb")
    error = f"<div style='color:#dc2626;margin-top:4px'>{html.escape(st.error)}</div>" if st.error else ""
    return (
        "<div style='width:100%'>"
        "<div style='height:14px;background:#e5e7eb;border-radius:7px;overflow:hidden'>"
        f"<div style='height:100%;width:{100 * fraction:.1f}%;background:{color};transition:width .4s'></div></div>"
        f"<div id='ft-progress-text' data-status='{html.escape(st.status)}' style='margin-top:4px'>"
        f"{html.escape(' · '.join(parts))}</div>{error}</div>"
    )


def loss_figure(st: JobState | None) -> Any:
    if st is None:
        return charts.loss_figure([], [])
    return charts.loss_figure(st.train_curve, st.val_curve, st.total_steps)


def results_view(task: str, metrics: dict, final: bool) -> tuple[str, Any, list[list], list[str]]:
    """(markdown, confusion figure or None, table rows, table headers) for the latest evaluation."""
    if not metrics:
        return "", None, [], CLASS_COLUMNS
    head = "Final results" if final else "Latest evaluation"
    where = f"step {metrics.get('step', 0)}, epoch {metrics.get('epoch', 0)}"
    if task == "classification" and "accuracy" in metrics:
        md = (f"### {head} ({where})\n\n**Accuracy** {metrics['accuracy']:.3f} · **macro-F1** "
              f"{metrics['macro_f1']:.3f} · validation loss {metrics['val_loss']:.4f} "
              f"· {metrics.get('count', metrics.get('n_val', 0))} validation rows")
        rows = [[c["label"], round(c["precision"], 3), round(c["recall"], 3), round(c["f1"], 3), c["support"]]
                for c in metrics.get("per_class", [])]
        fig = confusion_figure(metrics["labels"], metrics.get("matrix") or metrics["confusion"])
        return md, fig, rows, CLASS_COLUMNS
    md = (f"### {head} ({where})\n\n**Validation loss** {metrics['val_loss']:.4f} · "
          f"**perplexity** {metrics.get('perplexity', results.perplexity(metrics['val_loss'])):.2f}")
    rows = [[g["prompt"], g["before"], g["after"]] for g in metrics.get("generations", [])]
    if rows:
        md += "\n\nBefore/after generations for three held-out prompts:"
    return md, None, rows, GEN_COLUMNS


def run_rows(runs: list[RunInfo]) -> list[list[str]]:
    return [[r.id, r.name, r.task, r.base_model, r.status, r.created.replace("T", " ")[:19],
             results.summary(r.task, r.metrics) or r.error[:80]] for r in runs]


def run_record(run: RunInfo) -> dict:
    """A run as JSON for the ``runs`` API endpoint."""
    keep = {k: v for k, v in run.metrics.items() if k not in ("matrix", "confusion", "generations")}
    return {"id": run.id, "reference": run.reference, "name": run.name, "task": run.task,
            "base_model": run.base_model, "status": run.status, "created": run.created, "labels": run.labels,
            "metrics": keep, "error": run.error}
