"""Evaluation metrics: accuracy / macro-F1 / confusion matrix, and ROUGE with a CJK-aware tokenizer."""

from __future__ import annotations

import re

from pipelines.tasks.sentences import CJK, has_cjk

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_TOKEN = re.compile(rf"{CJK.pattern}|[^\W_]+", re.UNICODE)


class CharTokenizer:
    """ROUGE tokenizer for Chinese: each ideograph is a token, other words are lower-cased word tokens."""

    def tokenize(self, text: str) -> list[str]:
        return [tok.lower() for tok in _TOKEN.findall(text or "")]


def rouge_scores(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F1 of ``prediction`` against ``reference`` (character-level for Chinese)."""
    from rouge_score import rouge_scorer

    tokenizer = CharTokenizer() if has_cjk(prediction) or has_cjk(reference) else None
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=tokenizer is None, tokenizer=tokenizer)
    scores = scorer.score(reference or "", prediction or "")
    return {name: round(float(scores[name].fmeasure), 4) for name in ROUGE_TYPES}


def mean_rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE F1 over pairs whose reference is not empty (``count`` says how many)."""
    pairs = [(p, r) for p, r in zip(predictions, references, strict=True) if str(r).strip()]
    if not pairs:
        return {}
    rows = [rouge_scores(p, r) for p, r in pairs]
    means = {name: round(sum(row[name] for row in rows) / len(rows), 4) for name in ROUGE_TYPES}
    return {**means, "count": len(rows)}


def classification_metrics(truth: list, predicted: list, labels: list[str] | None = None) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix, as plain data.

    Rows whose true label is empty are skipped (``count`` says how many were scored). ``labels`` fixes the order
    (a trained classifier's label list); otherwise it is every label seen, in numeric-aware order. Macro-F1
    averages over the true labels (or ``labels``). Keys: accuracy, macro_f1, count, labels, matrix, per_class.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    from pipelines.labels import order_labels

    pairs = [(str(t).strip(), str(p)) for t, p in zip(truth, predicted, strict=True) if str(t).strip()]
    if not pairs:
        return {}
    y_true, y_pred = [t for t, _ in pairs], [p for _, p in pairs]
    order = list(labels) if labels is not None else list(order_labels(set(y_true) | set(y_pred))[0])
    averaged = list(labels) if labels is not None else list(order_labels(set(y_true))[0])
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=order, zero_division=0)
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=averaged, average="macro", zero_division=0)), 4),
        "count": len(pairs),
        "labels": order,
        "matrix": confusion_matrix(y_true, y_pred, labels=order).tolist(),
        "per_class": [{"label": name, "precision": round(float(p), 4), "recall": round(float(r), 4),
                       "f1": round(float(f), 4), "support": int(n)}
                      for name, p, r, f, n in zip(order, precision, recall, f1, support, strict=True)],
    }
