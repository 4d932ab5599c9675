"""Compare two to five runs: their loss curves (from each run's event log) and their settings side by side,
with the settings that differ marked."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import InputError
from pipelines.training.progress import LOG_FILE
from pipelines.training.store import RunInfo, RunStore, check_run_id
from pipelines.training.writer import read_meta

MIN_RUNS, MAX_RUNS = 2, 5
MAX_POINTS = 2000  # train-loss points per run (longer curves are thinned evenly)
# Shown first in the settings table; every other setting follows in the order of the first run's settings.
HEAD_ROWS = ("task", "base_model", "rows", "status", "created")
METRIC_KEYS = ("val_loss", "accuracy", "macro_f1", "perplexity", "steps_done", "train_seconds", "best_step")


@dataclass
class Comparison:
    """The runs (metrics), their curves (``[[step, loss], ...]``) and the settings rows."""

    runs: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    settings: list[dict[str, Any]]  # {"name", "values": [one per run], "differs"}
    differences: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_ids(value: str | list[str] | None) -> list[str]:
    """Run ids from a list, a JSON list or comma/space-separated text, in order, without repeats."""
    if isinstance(value, str):
        text = value.strip()
        try:
            loaded = json.loads(text) if text.startswith("[") else None
        except ValueError:
            loaded = None
        value = loaded if isinstance(loaded, list) else text.replace(",", " ").split()
    ids: list[str] = []
    for item in value or []:
        run_id = str(item).strip()
        if run_id and run_id not in ids:
            ids.append(run_id)
    return ids


def read_curves(folder: Path) -> tuple[list[list[float]], list[list[float]]]:
    """(train loss per step, validation loss per evaluation) from a run's ``log.jsonl``; a resumed run's repeated
    steps keep their last value."""
    train: dict[int, float] = {}
    val: dict[int, float] = {}
    try:
        lines = (Path(folder) / LOG_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return [], []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "step" and isinstance(record.get("loss"), int | float):
            train[int(record.get("step", 0))] = float(record["loss"])
        elif record.get("event") == "eval":
            loss = (record.get("metrics") or {}).get("val_loss")
            if isinstance(loss, int | float):
                val[int(record.get("step", 0))] = float(loss)
    points = [[s, train[s]] for s in sorted(train)]
    if len(points) > MAX_POINTS:
        every = -(-len(points) // MAX_POINTS)
        points = points[::every] + ([points[-1]] if (len(points) - 1) % every else [])
    return points, [[s, val[s]] for s in sorted(val)]


def _row_values(info: RunInfo) -> dict[str, Any]:
    meta = read_meta(info.path)
    data = meta.get("data") or {}
    values: dict[str, Any] = {"task": str(info.task), "base_model": info.base_model,
                              "rows": data.get("rows_kept", ""), "status": str(info.status), "created": info.created}
    values.update({k: v for k, v in info.settings.items()})
    return values


def _same(values: list[Any]) -> bool:
    return all(json.dumps(v, sort_keys=True, default=str) == json.dumps(values[0], sort_keys=True, default=str)
               for v in values)


def compare_runs(store: RunStore, run_ids: str | list[str] | None, user: str | None = None) -> Comparison:
    """Compare 2 to 5 runs of any status (``user``: with login, only runs that user may see)."""
    ids = parse_ids(run_ids)
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        raise InputError("compare_runs.pick_runs", low=MIN_RUNS, high=MAX_RUNS, count=len(ids))
    infos = [store.find(check_run_id(i), user) if user is not None else store.find(check_run_id(i)) for i in ids]
    runs, curves, rows = [], [], []
    for info in infos:
        label = info.name or info.id
        keep = {k: info.metrics[k] for k in METRIC_KEYS if k in info.metrics}
        runs.append({"id": info.id, "name": label, "reference": info.reference, "metrics": keep})
        train, val = read_curves(info.path)
        curves.append({"id": info.id, "label": label, "train": train, "val": val})
        rows.append(_row_values(info))
    names = [n for n in HEAD_ROWS if any(n in r for r in rows)]
    names += [n for r in rows for n in r if n not in names]
    names = list(dict.fromkeys(names))
    settings = []
    for name in names:
        values = [r.get(name, "") for r in rows]
        settings.append({"name": name, "values": values, "differs": not _same(values) and name != "created"})
    return Comparison(runs, curves, settings, [s["name"] for s in settings if s["differs"]])
