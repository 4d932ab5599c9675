"""Evaluation metrics as plain data: classification scores, language-model loss and perplexity."""

from __future__ import annotations

import math

import numpy as np


def classification_metrics(y_true: list[int], y_pred: list[int], labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, zero_division=0
    )
    per_class = [
        {"label": labels[i], "precision": float(precision[i]), "recall": float(recall[i]),
         "f1": float(f1[i]), "support": int(support[i])}
        for i in ids
    ]
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "per_class": per_class,
        "confusion": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
        "labels": list(labels),
        "n_val": len(y_true),
    }


def perplexity(loss: float) -> float:
    """exp(loss), capped so a diverged run gives a large number instead of an overflow."""
    return float(math.exp(min(loss, 50.0)))


def summary(task: str, metrics: dict) -> str:
    """One short line for tables: accuracy/F1 or loss/perplexity."""
    if not metrics:
        return ""
    if task == "classification" and "accuracy" in metrics:
        return f"acc {metrics['accuracy']:.3f} · F1 {metrics.get('macro_f1', 0):.3f}"
    if "val_loss" in metrics:
        ppl = metrics.get("perplexity")
        return f"val loss {metrics['val_loss']:.3f}" + (f" · ppl {ppl:.1f}" if ppl is not None else "")
    return ""


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
