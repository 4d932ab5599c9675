"""Evaluation metrics as plain data: classification scores, language-model loss and perplexity."""

from __future__ import annotations

import math

import numpy as np


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
