"""What a run report shows, read from the run folder once: the HTML page (``run_report.py``) and the Markdown
model card (``model_card.py``) render the same :class:`RunReportData`.

Optional files written by the training side are read defensively (absent or unreadable: no section):

- ``before_after.json``: the base model against the adapter on the validation rows. Read shapes: an Evaluate
  report (``{"models": [..], "metrics": {model: {metric: {value, low, high}}}, "pairs": [..]}``, also under
  ``"report"``), or ``{"before": .., "after": ..}`` where each side is a metrics dict or ``{"model", "metrics"}``;
  optional ``"examples"`` (a list of flat dicts, e.g. ``{input, reference, before, after}``), ``"rows"``, ``"task"``.
  The training side's shape (``pipelines/training/before_after.py``) has no ``examples`` but ``outputs`` per side
  and ``row_indices`` into ``data.json``'s ``examples``: the examples are built from those.
- ``baseline.json``: a classifier's logistic-regression baseline; its numbers are listed as they are.
- ``evaluations.jsonl``: the Evaluate tab's evaluations of ``run:<id>`` (see :func:`record_evaluation`).
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.training.store import RunInfo, RunStore

EVALUATIONS = "evaluations.jsonl"
BEFORE_AFTER = "before_after.json"
BASELINE = "baseline.json"
DATA = "data.json"  # the training rows (``examples``), for the before/after examples
VAL_KEYS = ("training.log.eval_cls", "training.log.eval_lm")  # the log lines of each validation
PACKAGES = ("torch", "transformers", "peft", "gradio", "scikit-learn", "sacrebleu", "rouge-score")
DETAIL_METRICS = frozenset({"labels", "matrix", "per_class", "generations"})  # shown as their own tables
MAX_EXAMPLES = 10
MAX_CELL = 400


@dataclass
class Comparison:
    """Two or more models on the same rows: ``metrics[model][metric]`` (``{value, low, high}`` or a number)."""

    models: list[str]
    metrics: dict[str, dict[str, Any]]
    p_values: dict[str, Any] = field(default_factory=dict)
    rows: Any = None
    task: Any = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    def metric_names(self) -> list[str]:
        return list(dict.fromkeys(name for model in self.models for name in self.metrics.get(model, {})))


@dataclass
class RunReportData:
    """Everything one run report shows, as plain data."""

    run: RunInfo
    meta: dict[str, Any]
    train_curve: list[tuple[int, float]]
    val_curve: list[tuple[int, float]]
    evaluations: list[dict[str, Any]]
    before_after: Comparison | None
    baseline: dict[str, Any] | None
    environment: list[tuple[str, str]]

    @property
    def title(self) -> str:
        return self.run.name or self.run.id

    def about(self) -> list[tuple[str, Any]]:
        run = self.run
        return [("id", run.id), ("name", run.name), ("task", run.task), ("base_model", run.base_model),
                ("status", str(run.status)), ("created", run.created), ("labels", ", ".join(run.labels))]

    def settings(self) -> list[tuple[str, Any]]:
        return sorted(self.run.settings.items())

    def data_summary(self) -> list[tuple[str, Any]]:
        return sorted((self.meta.get("data") or {}).items())

    def metrics(self) -> list[tuple[str, Any]]:
        """The run's final validation metrics (scalars; per-class scores and generations have their own tables)."""
        return sorted((k, v) for k, v in self.run.metrics.items() if k not in DETAIL_METRICS)

    def per_class(self) -> list[dict[str, Any]]:
        rows = self.run.metrics.get("per_class")
        return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []

    def generations(self) -> list[dict[str, Any]]:
        """A causal-LM run's sample prompts with the reply before and after training."""
        rows = self.run.metrics.get("generations")
        return [r for r in rows if isinstance(r, dict)][:MAX_EXAMPLES] if isinstance(rows, list) else []


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is absent or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_evaluations(run: RunInfo) -> list[dict[str, Any]]:
    path = run.path / EVALUATIONS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def _metrics_of(side: Any) -> dict[str, Any]:
    if not isinstance(side, dict):
        return {}
    inner = side.get("metrics", side)
    if not isinstance(inner, dict):
        return {}
    return {str(k): v for k, v in inner.items() if _is_metric(v)}


def _is_metric(value: Any) -> bool:
    if isinstance(value, dict):
        return "value" in value
    return isinstance(value, int | float) and not isinstance(value, bool)


def _examples(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        return []
    return [{str(k): v for k, v in item.items() if not isinstance(v, dict | list)}
            for item in raw[:MAX_EXAMPLES] if isinstance(item, dict)]


def _p_values(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return {str(k): v for k, v in raw.items() if v is None or isinstance(v, int | float)}
    if isinstance(raw, list) and raw and isinstance(raw[0], dict):
        return _p_values(raw[0].get("p_values"))
    return {}


def _example_text(example: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((example[k] for k in keys if k in example), "")


def outputs_examples(raw: dict[str, Any], data: Any) -> list[dict[str, Any]]:
    """Examples from the training side's shape: ``before``/``after`` each with ``outputs`` (one ``{"prediction"}``
    per row) for the rows ``row_indices`` of ``data.json``'s ``examples``; rows whose output changed first."""
    before, after = raw.get("before"), raw.get("after")
    indices, examples = raw.get("row_indices"), data.get("examples") if isinstance(data, dict) else None
    if not (isinstance(before, dict) and isinstance(after, dict) and isinstance(indices, list)
            and isinstance(examples, list)):
        return []
    labels = raw.get("labels") if isinstance(raw.get("labels"), list) else []
    out_a, out_b = before.get("outputs") or [], after.get("outputs") or []
    rows = []
    for i, index in enumerate(indices[: min(len(out_a), len(out_b))]):
        if not isinstance(index, int) or not 0 <= index < len(examples) or not isinstance(examples[index], dict):
            continue
        example = examples[index]
        reference = _example_text(example, ("label", "response", "reference"))
        if isinstance(reference, int) and not isinstance(reference, bool) and 0 <= reference < len(labels):
            reference = labels[reference]
        a, b = (o.get("prediction", "") if isinstance(o, dict) else "" for o in (out_a[i], out_b[i]))
        rows.append({"input": _example_text(example, ("text", "prompt", "input")), "reference": reference,
                     "before": a, "after": b})
    rows.sort(key=lambda r: r["before"] == r["after"])  # stable: the rows that changed first, in row order
    return rows[:MAX_EXAMPLES]


def parse_before_after(raw: Any, data: Any = None) -> Comparison | None:
    """A :class:`Comparison` from ``before_after.json`` in any of the documented shapes, else None
    (``data``: the run's ``data.json``, for the examples of the ``outputs`` shape)."""
    if not isinstance(raw, dict):
        return None
    report = raw.get("report") if isinstance(raw.get("report"), dict) else raw
    if isinstance(report.get("models"), list) and isinstance(report.get("metrics"), dict):
        models = [str(m) for m in report["models"] if isinstance(report["metrics"].get(m), dict)]
        metrics = {m: _metrics_of(report["metrics"][m]) for m in models}
        p_values = _p_values(report.get("pairs") or raw.get("p_values"))
    elif "before" in raw or "after" in raw:
        models, metrics = [], {}
        for side in ("before", "after"):
            value = raw.get(side)
            name = str(value.get("model") or value.get("ref") or side) if isinstance(value, dict) else side
            name = name if name not in metrics else f"{name} ({side})"
            models.append(name)
            metrics[name] = _metrics_of(value)
        p_values = _p_values(raw.get("p_values") or raw.get("pairs"))
    else:
        return None
    if not any(metrics.values()):
        return None
    rows, task = raw.get("rows", report.get("rows")), raw.get("task", report.get("task"))
    examples = _examples(raw.get("examples")) or outputs_examples(raw, data)
    return Comparison(models, metrics, p_values, rows, task, examples)


def parse_baseline(raw: Any) -> dict[str, Any] | None:
    """The baseline's scalar numbers and names (nested values left out), or None."""
    if not isinstance(raw, dict):
        return None
    flat = {str(k): v for k, v in raw.items()
            if k != "version" and not isinstance(v, list) and (not isinstance(v, dict) or "value" in v)}
    return flat or None


def environment(meta: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """Python, platform, the run's device and precision, and the versions of the packages that shape its numbers."""
    rows = [("python", platform.python_version()), ("platform", platform.platform())]
    for key in ("device", "precision"):
        if meta and meta.get(key):
            rows.append((key, str(meta[key])))
    for name in PACKAGES:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return rows


def loss_curves(run: RunInfo) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(train loss per step, validation loss per evaluation) from the run's log."""
    from pipelines.training.writer import read_log

    train, val = [], []
    for r in read_log(run):
        try:
            if r.get("event") == "step" and "loss" in r:
                train.append((int(r["step"]), float(r["loss"])))
            elif r.get("key") in VAL_KEYS and "step" in r and "loss" in r:
                val.append((int(r["step"]), float(r["loss"])))
        except (TypeError, ValueError):
            continue
    return [p for p in train if math.isfinite(p[1])], [p for p in val if math.isfinite(p[1])]


def collect(store: RunStore, run_id: str) -> RunReportData:
    """Read everything the report of ``run_id`` (any status) shows."""
    run = store.find(run_id)
    meta = read_json(run.path / "run.json") or {}
    train, val = loss_curves(run)
    return RunReportData(run, meta, train, val, read_evaluations(run),
                         parse_before_after(read_json(run.path / BEFORE_AFTER), read_json(run.path / DATA)),
                         parse_baseline(read_json(run.path / BASELINE)), environment(meta))


def cell(value: Any) -> str:
    """A value as report text: ``v [low, high]`` for an interval, 4 significant digits for floats, JSON for the rest."""
    if isinstance(value, dict) and "value" in value:
        shown = "—" if value["value"] is None else cell(value["value"])
        if value.get("low") is not None and value.get("high") is not None:
            shown += f" [{cell(value['low'])}, {cell(value['high'])}]"
        return shown
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if 0 < abs(value) < 1e-3 or not math.isfinite(value) else str(round(value, 4))
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
