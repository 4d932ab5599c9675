"""Evaluation results as plain data: one-line summaries, perplexity, and whether a classifier is under-trained."""

from __future__ import annotations

import math

import numpy as np

from pipelines.messages import render

# A classifier whose validation loss is still this close to chance (ln K), or whose accuracy is this close
# to guessing (1/K), gives nearly the same probability to every label: it needs more training.
CHANCE_LOSS_FRACTION = 0.9
CHANCE_ACCURACY_MARGIN = 0.1


def perplexity(loss: float) -> float:
    """exp(loss), capped so a diverged run gives a large number instead of an overflow."""
    return float(math.exp(min(loss, 50.0)))


def chance_check(metrics: dict, num_labels: int) -> dict:
    """``{"under_trained": bool, "chance_loss": ln K}`` for a classification evaluation (empty when unknown)."""
    if num_labels < 2 or "val_loss" not in metrics:
        return {}
    chance = math.log(num_labels)
    loss_near = metrics["val_loss"] >= CHANCE_LOSS_FRACTION * chance
    accuracy = metrics.get("accuracy")
    accuracy_near = accuracy is not None and accuracy <= 1 / num_labels + CHANCE_ACCURACY_MARGIN
    return {"under_trained": bool(loss_near or accuracy_near), "chance_loss": round(chance, 4)}


def summary(task: str, metrics: dict, lang: str = "en") -> str:
    """One short line for tables: accuracy/F1 or loss/perplexity, in ``lang``."""
    if not metrics:
        return ""
    if task == "classification" and "accuracy" in metrics:
        line = render("training.summary.cls", lang, {"accuracy": f"{metrics['accuracy']:.3f}",
                                                    "f1": f"{metrics.get('macro_f1', 0):.3f}"})
        return line + (" · " + render("training.summary.under_trained", lang)
                       if metrics.get("under_trained") else "")
    if "val_loss" in metrics:
        line = render("training.summary.loss", lang, {"loss": f"{metrics['val_loss']:.3f}"})
        ppl = metrics.get("perplexity")
        return line + (" · " + render("training.summary.ppl", lang, {"ppl": f"{ppl:.1f}"}) if ppl is not None else "")
    return ""


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
