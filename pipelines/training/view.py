"""Plain-data views of a training job and of runs (HTML strings, figures, table rows) in a given language."""

from __future__ import annotations

import html
from typing import Any

from pipelines.charts import confusion_figure
from pipelines.messages import render
from pipelines.training import charts, results
from pipelines.training.enums import RunStatus, task_key
from pipelines.training.job import JobState
from pipelines.training.store import RunInfo

RUN_COLUMNS = ("id", "name", "task", "base_model", "status", "created", "metrics")
CLASS_COLUMNS = ("label", "precision", "recall", "f1", "support")
GEN_COLUMNS = ("prompt", "before", "after")
DOMAIN_COLUMNS = ("text", "before", "after", "change")  # probes.col.<name>
STATUS_COLORS = (("failed", "#dc2626"), ("stopped", "#d97706"), ("complete", "#16a34a"))


def headers(columns: tuple[str, ...], lang: str = "en") -> list[str]:
    """Translated table headers (``training.col.<name>``)."""
    return [render(f"training.col.{name}", lang) for name in columns]


def status_text(status: str, lang: str = "en") -> str:
    return render(f"training.status.{status}", lang)


def task_text(task: str, lang: str = "en") -> str:
    return render(task_key(task), lang)


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def progress_html(st: JobState | None, lang: str = "en") -> str:
    """A progress bar with step, epoch, throughput, ETA, device and status."""
    if st is None:
        return f"<div id='ft-progress-text'>{html.escape(render('training.no_training', lang))}</div>"
    fraction = st.step / st.total_steps if st.total_steps else 0.0
    speed = render("training.progress.samples", lang, {"rate": f"{st.samples_per_s:.1f}"})
    if st.task in ("causal-lm", "domain", "domain-mlm"):
        speed += " · " + render("training.progress.tokens", lang, {"rate": f"{st.tokens_per_s:.0f}"})
    eta = render("training.progress.done", lang) if st.finished else \
        render("training.progress.eta", lang, {"eta": clock(st.eta_s)})
    status = status_text(st.status, lang)
    if st.resumable and st.status in (RunStatus.FAILED, RunStatus.STOPPED):
        status += " · " + render("training.status.resumable", lang)
    parts = [status,
             render("training.progress.step", lang, {"step": st.step, "total": st.total_steps or "?"}),
             render("training.progress.epoch", lang, {"epoch": f"{st.epoch:.2f}"}), speed, eta,
             f"{st.device.upper()} {st.precision}"]
    if st.world_size > 1:
        parts.append(render("training.progress.processes", lang, {"n": st.world_size}))
    color = dict(STATUS_COLORS).get(st.status, "#2563eb")
    error = st.error_msg.render(lang) if st.error_msg else st.error
    error_div = f"<div style='color:#dc2626;margin-top:4px'>{html.escape(error)}</div>" if error else ""
    return (
        "<div style='width:100%'>"
        "<div style='height:14px;background:#e5e7eb;border-radius:7px;overflow:hidden'>"
        f"<div style='height:100%;width:{100 * fraction:.1f}%;background:{color};transition:width .4s'></div></div>"
        f"<div id='ft-progress-text' data-status='{html.escape(str(st.status))}' style='margin-top:4px'>"
        f"{html.escape(' · '.join(parts))}</div>{error_div}</div>"
    )


def loss_figure(st: JobState | None, lang: str = "en") -> Any:
    if st is None:
        return charts.loss_figure([], [], lang=lang)
    return charts.loss_figure(st.train_curve, st.val_curve, st.total_steps, lang=lang, best_step=st.best_step)


def _advice(metrics: dict, final: bool, lang: str) -> str:
    if not (final and metrics.get("under_trained")):
        return ""
    values = {"loss": f"{metrics['val_loss']:.3f}", "chance": f"{metrics.get('chance_loss', 0):.3f}"}
    return "\n\n> ⚠️ " + render("training.results.under_trained", lang, values)


def results_view(task: str, metrics: dict, final: bool, lang: str = "en") -> tuple[str, Any, list[list], list[str]]:
    """(markdown, confusion figure or None, table rows, table headers) for the latest evaluation."""
    if not metrics:
        return "", None, [], headers(CLASS_COLUMNS, lang)
    head = render("training.results.final" if final else "training.results.latest", lang,
                  {"step": metrics.get("step", 0), "epoch": metrics.get("epoch", 0)})
    if task == "classification" and "accuracy" in metrics:
        body = render("training.results.cls", lang, {
            "accuracy": f"{metrics['accuracy']:.3f}", "f1": f"{metrics['macro_f1']:.3f}",
            "loss": f"{metrics['val_loss']:.4f}", "rows": metrics.get("count", metrics.get("n_val", 0))})
        rows = [[c["label"], round(c["precision"], 3), round(c["recall"], 3), round(c["f1"], 3), c["support"]]
                for c in metrics.get("per_class", [])]
        fig = confusion_figure(metrics["labels"], metrics.get("matrix") or metrics["confusion"])
        return f"### {head}\n\n{body}{_advice(metrics, final, lang)}", fig, rows, headers(CLASS_COLUMNS, lang)
    ppl = metrics.get("perplexity", results.perplexity(metrics["val_loss"]))
    if task == "domain-mlm":
        md = f"### {head}\n\n" + render("probes.results.mlm", lang, {"loss": f"{metrics['val_loss']:.4f}"})
    else:
        md = f"### {head}\n\n" + render("training.results.lm", lang, {"loss": f"{metrics['val_loss']:.4f}",
                                                                     "ppl": f"{ppl:.2f}"})
    if metrics.get("domain"):
        domain_md, rows = domain_view(metrics["domain"], lang)
        return md + "\n\n" + domain_md, None, rows, [render(f"probes.col.{c}", lang) for c in DOMAIN_COLUMNS]
    rows = [[g["prompt"], g["before"], g["after"]] for g in metrics.get("generations", [])]
    if rows:
        md += "\n\n" + render("training.results.generations", lang)
    return md, None, rows, headers(GEN_COLUMNS, lang)


def domain_view(record: dict, lang: str = "en") -> tuple[str, list[list]]:
    """Domain adaptation: a sentence on what moved and one row per text set (held-out domain, general English)
    with the measure before and after (perplexity; masked-token loss for an encoder)."""
    value = "loss" if record.get("measure") == "masked_loss" else "perplexity"
    before, after = record.get("before") or {}, record.get("after") or {}
    rows = []
    for name in ("held_out", "general"):
        if name in after:
            old = before.get(name, {}).get(value)
            new = after[name][value]
            change = f"{100 * (new - old) / old:+.1f}%" if old else "–"
            rows.append([render(f"probes.set.{name}", lang), "–" if old is None else f"{old:.3f}", f"{new:.3f}",
                         change])
    md = render("probes.results.domain", lang, {"measure": render(f"probes.measure.{record.get('measure')}", lang),
                                                 "held": record.get("chunks", {}).get("held_out", 0),
                                                 "general": record.get("chunks", {}).get("general", 0)})
    return md, rows


def run_rows(runs: list[RunInfo], lang: str = "en") -> list[list[str]]:
    """The runs table: one row per run, in ``lang``."""
    rows = []
    for r in runs:
        error = r.error_msg.render(lang) if r.error_msg and r.status == RunStatus.FAILED else ""
        status = status_text(r.status, lang)
        if r.resumable and r.status in (RunStatus.FAILED, RunStatus.STOPPED):
            status += " · " + render("training.status.resumable", lang)
        rows.append([r.id, r.name, task_text(r.task, lang), r.base_model, status,
                     r.created.replace("T", " ")[:19], results.summary(r.task, r.metrics, lang) or error[:80]])
    return rows


def run_record(run: RunInfo) -> dict:
    """A run as JSON for the ``runs`` API endpoint."""
    keep = {k: v for k, v in run.metrics.items() if k not in ("matrix", "confusion", "generations", "probes")}
    return {"id": run.id, "reference": run.reference, "name": run.name, "task": str(run.task),
            "base_model": run.base_model, "status": str(run.status), "created": run.created, "labels": run.labels,
            "metrics": keep, "error": run.error, "resumable": run.resumable}
