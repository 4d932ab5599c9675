"""From the rows' predictions to the report: metrics with 95% intervals, paired p-values, per-class scores,
confusion matrices, and the per-row scores the "rows that changed" table sorts by. Plain data only."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np

from pipelines.evaluation.bootstrap import (
    MacroF1Stat,
    MeanStat,
    RatioStat,
    Statistic,
    SumStat,
    interval,
    paired_p_value,
    resample_weights,
)
from pipelines.evaluation.spec import EvalData, EvalOptions, EvalTask
from pipelines.evaluation.text_metrics import RougeBatch, SacreStats, exact_match, text_length, token_f1

LN2 = math.log(2)


def _classification(data: EvalData, rows: list[dict], n: int) -> tuple[dict[str, Statistic], dict, list[float]]:
    from pipelines.tasks.metrics import classification_metrics

    truth = data.targets[:n]
    predicted = [str(r["prediction"]) for r in rows]
    codes = {label: i for i, label in enumerate(dict.fromkeys([*truth, *predicted]))}
    correct = np.asarray([float(t == p) for t, p in zip(truth, predicted, strict=True)])
    stats = {"accuracy": MeanStat(correct),
             "macro_f1": MacroF1Stat(np.asarray([codes[t] for t in truth]), np.asarray([codes[p] for p in predicted]),
                                     len(codes))}
    detail = classification_metrics(truth, predicted)
    extra = {"labels": detail["labels"], "matrix": detail["matrix"], "per_class": detail["per_class"]}
    return stats, extra, correct.tolist()


def _generation(data: EvalData, rows: list[dict], n: int, rouge: RougeBatch,
                sacre: SacreStats) -> tuple[dict[str, Statistic], dict, list[float]]:
    refs = data.targets[:n]
    preds = [str(r["prediction"]) for r in rows]
    rouge_rows = rouge.many(preds, refs)
    stats: dict[str, Statistic] = {name: MeanStat(np.asarray(values)) for name, values in rouge_rows.items()}
    for name, matrix in sacre.stats(preds).items():
        stats[name] = SumStat(matrix, lambda summed, name=name: sacre.score(name, summed))
    stats["exact_match"] = MeanStat(np.asarray([exact_match(p, r) for p, r in zip(preds, refs, strict=True)]))
    stats["token_f1"] = MeanStat(np.asarray([token_f1(p, r) for p, r in zip(preds, refs, strict=True)]))
    stats["mean_length"] = MeanStat(np.asarray([float(text_length(p)) for p in preds]))
    extra: dict[str, Any] = {"bleu_tokenize": sacre.tokenize}
    if all(r.get("nll") is not None for r in rows):
        stats["reference_perplexity"] = RatioStat(np.asarray([r["nll"] for r in rows]),
                                                  np.asarray([float(r["tokens"]) for r in rows]), np.exp)
    else:  # a remote model: no token probabilities, so no perplexity (not a zero)
        extra["unavailable"] = ["reference_perplexity"]
    return stats, extra, rouge_rows["rougeL"]


def _language_modelling(rows: list[dict]) -> tuple[dict[str, Statistic], dict, list[float]]:
    nll = np.asarray([r["nll"] for r in rows])
    tokens = np.asarray([float(r["tokens"]) for r in rows])
    stats = {"perplexity": RatioStat(nll, tokens, np.exp), "bits_per_token": RatioStat(nll, tokens, lambda x: x / LN2)}
    per_row = [float(a / b / LN2) if b else float("nan") for a, b in zip(nll, tokens, strict=True)]
    return stats, {"tokens": int(tokens.sum())}, per_row


def _metric(stat: Statistic | None, weights: np.ndarray, n: int, options: EvalOptions) -> dict[str, Any]:
    """``{"value", "low", "high"}`` (only ``value`` without resamples; ``None`` when not available)."""
    if stat is None:
        return {"value": None}
    return interval(stat, weights).as_dict() if options.resamples else {"value": round(stat.point(n), 4)}


def _p_value(a: Statistic | None, b: Statistic | None, weights: np.ndarray) -> float | None:
    return None if a is None or b is None else round(paired_p_value(a, b, weights), 4)


def score(data: EvalData, models: list[str], results: list[list[dict]], options: EvalOptions) -> dict[str, Any]:
    """The report of ``models`` on the first ``n`` rows every model has scored (all of them unless stopped)."""
    n = min((len(r) for r in results), default=0)
    if n == 0:
        return {"task": data.task.value, "rows": 0, "models": list(models), "metrics": {}, "pairs": [], "detail": {}}
    weights = resample_weights(n, max(1, options.resamples), options.seed)
    rouge = RougeBatch() if data.task == EvalTask.GENERATION else None
    sacre = SacreStats(data.targets[:n]) if data.task == EvalTask.GENERATION else None
    stats, detail, per_row = {}, {}, {}
    for model, rows in zip(models, results, strict=True):
        if data.task == EvalTask.CLASSIFICATION:
            stats[model], detail[model], per_row[model] = _classification(data, rows[:n], n)
        elif data.task == EvalTask.GENERATION:
            stats[model], detail[model], per_row[model] = _generation(data, rows[:n], n, rouge, sacre)
        else:
            stats[model], detail[model], per_row[model] = _language_modelling(rows[:n])
    names = list(dict.fromkeys(name for model in models for name in stats[model]))
    metrics = {model: {name: _metric(stats[model].get(name), weights, n, options) for name in names}
               for model in models}
    pairs = [{"a": a, "b": b, "p_values": {name: _p_value(stats[a].get(name), stats[b].get(name), weights)
                                           for name in names}}
             for a, b in combinations(models, 2)] if options.resamples else []
    return {"task": data.task.value, "rows": n, "models": list(models), "metrics": metrics, "pairs": pairs,
            "detail": detail, "per_row": per_row, "resamples": options.resamples, "seed": options.seed}
