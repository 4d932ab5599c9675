"""The predictions of every model per row, the "rows that changed" between two models, and the downloads."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pipelines.evaluation.spec import EvalData, EvalTask

ROW_SCORE = MappingProxyType({EvalTask.CLASSIFICATION.value: "correct", EvalTask.GENERATION.value: "rougeL",
                             EvalTask.LANGUAGE_MODELLING.value: "bits_per_token"})


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 4)
    return value


def prediction_rows(data: EvalData, models: list[str], results: list[list[dict]], report: dict) -> list[dict]:
    """One record per scored row: row number, input, reference, and each model's output and row score."""
    n = report.get("rows", 0)
    score_name = ROW_SCORE[data.task.value]
    out = []
    for i in range(n):
        record: dict[str, Any] = {"row": data.row_numbers[i], "input": data.inputs[i]}
        if data.targets is not None:
            record["reference"] = data.targets[i]
        for m, model in enumerate(models):
            row = results[m][i]
            if "prediction" in row:
                record[f"{model} | output"] = row["prediction"]
            record[f"{model} | {score_name}"] = _clean(report["per_row"][model][i])
        out.append(record)
    return out


def changed_rows(report: dict, records: list[dict], a: str, b: str, limit: int = 50) -> list[dict]:
    """Rows sorted by the largest per-row difference ``b - a`` (in absolute value); unchanged rows left out.

    Classification: wrong->right (+1) and right->wrong (-1); generation: ROUGE-L gain or loss; language
    modelling: bits per token (lower is better, so a gain is a drop). Each record gets ``change``.
    """
    task = report.get("task")
    per_row = report.get("per_row", {})
    if a not in per_row or b not in per_row or a == b:
        return []
    sign = -1.0 if task == EvalTask.LANGUAGE_MODELLING.value else 1.0
    changed = []
    for i in range(len(records)):
        x, y = per_row[a][i], per_row[b][i]
        if not (math.isfinite(x) and math.isfinite(y)) or abs(y - x) < 1e-9:
            continue
        changed.append((abs(y - x), i, sign * (y - x)))
    changed.sort(key=lambda item: (-item[0], item[1]))
    return [{**records[i], "change": round(delta, 4)} for _, i, delta in changed[:limit]]


def write_predictions(records: list[dict], report: dict, folder: str | Path | None = None) -> list[str]:
    """``predictions.csv`` (formula-safe) and ``evaluation.json`` (the report and the predictions)."""
    import pandas as pd

    from pipelines.tables import write_csv

    folder = Path(folder or tempfile.mkdtemp(prefix="lmw-evaluate-"))
    csv_path = write_csv(pd.DataFrame(records), folder / "predictions.csv")
    public = {k: v for k, v in report.items() if k != "per_row"}
    json_path = folder / "evaluation.json"
    json_path.write_text(json.dumps({"report": public, "predictions": records}, ensure_ascii=False, indent=1,
                                    default=str), encoding="utf-8")
    return [str(csv_path), str(json_path)]
