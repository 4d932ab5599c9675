"""The frozen-embedding baseline of a classifier run: did LoRA earn its time?

For every classifier run, a scikit-learn ``LogisticRegression`` is fitted on the base encoder's frozen,
mean-pooled, L2-normalised sentence embeddings (the same :class:`~pipelines.tasks.embeddings.EmbeddingTask` the
app's zero-shot embeddings use) of the run's train split and scored on its validation split. The result goes to
``baseline.json`` in the run folder::

    {"version": 1, "method": "logistic-regression", "encoder": "minilm-l6",
     "train_rows": 336, "val_rows": 84, "max_length": 64,
     "accuracy": 0.97, "macro_f1": 0.97,           # on the validation split
     "embed_seconds": 2.1, "fit_seconds": 0.05,    # embedding both splits; fitting the regression
     "seconds": 2.15}                              # the baseline's whole cost

:func:`verdict` compares it with the run's own validation metrics (same rows).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.messages import Msg

if TYPE_CHECKING:
    from pipelines.tasks.embeddings import EmbeddingTask

BASELINE_FILE = "baseline.json"
VERSION = 1
MAX_ITER = 1000
# Points of accuracy within which the run and the baseline count as a tie (the run then did not earn its time).
TIE = 0.005


def fit_logistic(train_x: np.ndarray, train_y: list[int], seed: int = 0) -> Any:
    """The fitted regression (scikit-learn defaults: L2, C=1, lbfgs) on ``train_x``."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=MAX_ITER, random_state=seed).fit(train_x, train_y)


def baseline_scores(encoder: EmbeddingTask, train: list[dict], val: list[dict], labels: list[str],
                    seed: int = 0) -> dict[str, Any]:
    """Embed both splits with the frozen encoder, fit on ``train`` and score ``val``; examples are
    ``{"text", "label": index}`` (a :class:`~pipelines.training.data.PreparedData`'s)."""
    from pipelines.tasks.metrics import classification_metrics

    started = time.perf_counter()
    train_x = encoder.encode([e["text"] for e in train])
    val_x = encoder.encode([e["text"] for e in val])
    embedded = time.perf_counter()
    model = fit_logistic(train_x, [e["label"] for e in train], seed)
    fitted = time.perf_counter()
    predicted = model.predict(val_x)
    metrics = classification_metrics([labels[e["label"]] for e in val], [labels[int(i)] for i in predicted], labels)
    return {
        "version": VERSION, "method": "logistic-regression", "train_rows": len(train), "val_rows": len(val),
        "max_length": encoder.max_length, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
        "embed_seconds": round(embedded - started, 3), "fit_seconds": round(fitted - embedded, 3),
        "seconds": round(fitted - started, 3),
    }


def write_baseline(run_dir: Path, result: dict[str, Any]) -> Path:
    """Write ``baseline.json`` into ``run_dir`` (whole file or nothing)."""
    path = Path(run_dir) / BASELINE_FILE
    part = path.with_suffix(".json.part")
    part.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    part.replace(path)
    return path


def read_baseline(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``baseline.json``, or None when absent or unreadable."""
    try:
        data = json.loads((Path(run_dir) / BASELINE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "accuracy" in data else None


def verdict(baseline: dict[str, Any] | None, metrics: dict[str, Any] | None) -> Msg | None:
    """One sentence: the run beat the baseline ("LoRA earned its time") or plainly did not; None when either
    side is missing. ``metrics`` is the run's validation evaluation (``accuracy``, ``macro_f1``)."""
    if not baseline or not metrics or metrics.get("accuracy") is None:
        return None
    run_acc, base_acc = float(metrics["accuracy"]), float(baseline["accuracy"])
    params = {"run": f"{run_acc:.3f}", "baseline": f"{base_acc:.3f}",
              "run_f1": f"{float(metrics.get('macro_f1', 0.0)):.3f}",
              "baseline_f1": f"{float(baseline['macro_f1']):.3f}",
              "seconds": f"{float(baseline.get('seconds', 0.0)):.1f}"}
    if run_acc > base_acc + TIE:
        return Msg.of("finetune_results.baseline_beaten", **params)
    if run_acc >= base_acc - TIE:
        return Msg.of("finetune_results.baseline_tied", **params)
    return Msg.of("finetune_results.baseline_not_beaten", **params)


def earned(baseline: dict[str, Any] | None, metrics: dict[str, Any] | None) -> bool | None:
    """Whether the run's validation accuracy beat the baseline's by more than :data:`TIE` (None: unknown)."""
    message = verdict(baseline, metrics)
    return None if message is None else message.key == "finetune_results.baseline_beaten"
