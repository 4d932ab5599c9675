"""The pre-flight check of a fine-tuning run, before Start: what the data looks like to the base model.

Token lengths with the base model's own tokenizer (counted exactly as the trainer counts them, so the
truncated share is the share the run will cut), a suggested max length, label balance, duplicates, near-empty
rows and rows that the validation split shares with the train split. The time and memory estimate comes from a
measured probe of the real training step (:mod:`pipelines.training.preflight_probe`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pipelines.messages import Msg
from pipelines.training.data import PreparedData, split
from pipelines.training.enums import TrainTask
from pipelines.training.settings import TrainSettings


@dataclass(frozen=True)
class PreflightConfig:
    """Thresholds of the checks."""

    balance_warn: float = 0.5  # warn when the rarest label has under this share of the most common one's rows
    truncated_warn: float = 0.05  # warn when more than this share of the rows is cut
    suggest_percentile: float = 95.0
    near_empty_chars: int = 3  # rows with fewer letters or digits than this are near-empty
    bins: int = 30


WORD = re.compile(r"\w", re.UNICODE)
SPACE = re.compile(r"\s+")


@dataclass
class Histogram:
    """Token-length histogram: ``counts[i]`` rows have a length in ``[edges[i], edges[i + 1])``."""

    edges: list[float]
    counts: list[int]


@dataclass
class PreflightReport:
    """Everything the pre-flight panel shows, as plain data (``to_dict`` is the ``/preflight`` answer)."""

    task: str
    base_model: str
    rows: int
    max_length: int
    lengths: list[int]
    histogram: Histogram
    length_stats: dict[str, float]
    truncated: int
    truncated_share: float
    suggested_max_length: int
    label_counts: dict[str, int] = field(default_factory=dict)
    balance_ratio: float | None = None  # rarest / most common label count
    imbalanced: bool = False
    oversample: bool = False
    balanced_counts: dict[str, int] = field(default_factory=dict)  # after oversampling (when on)
    duplicates: int = 0
    conflicting: int = 0  # duplicated texts with different labels
    near_empty: int = 0
    train_rows: int = 0
    val_rows: int = 0
    in_validation: int = 0  # validation rows whose input also appears in the train split
    warnings: list[Msg] = field(default_factory=list)
    estimate: dict[str, Any] | None = None

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        """JSON-ready; warnings as ``{"key", "params", "text"}`` in ``lang``."""
        data = asdict(self)
        data.pop("lengths")
        data["warnings"] = [{"key": w.key, "params": {k: str(v) for k, v in w.params.items()},
                             "text": w.render(lang)} for w in self.warnings]
        return data


def input_key(example: dict) -> str:
    """What the model reads of a row, normalised (case, spacing): duplicates and leaks compare these."""
    text = example.get("text") if "text" in example else f"{example.get('prompt', '')}\n{example.get('response', '')}"
    return SPACE.sub(" ", str(text)).strip().lower()


def token_lengths(tokenizer: Any, data: PreparedData) -> list[int]:
    """Each row's token count, as the trainer encodes it (special tokens, chat template, EOS included)."""
    if data.task == TrainTask.CLASSIFICATION:
        return [len(ids) for ids in tokenizer([e["text"] for e in data.examples], truncation=False)["input_ids"]]
    from pipelines.training.tokenize import encode_lm

    rows, _ = encode_lm(tokenizer, data.examples, 10**9)
    return [len(r["input_ids"]) for r in rows]


def suggest_max_length(lengths: list[int], percentile: float = 95.0,
                       model_limit: int | None = None) -> int:
    """The ``percentile`` of the lengths (at most 100 - percentile % of the rows are longer), rounded up to a
    multiple of 16 (32 above 256), within 8..4096."""
    if not lengths:
        return 8
    value = float(np.percentile(np.array(lengths), percentile, method="inverted_cdf"))  # an actual length
    step = 16 if value <= 256 else 32
    suggested = max(8, min(4096, step * math.ceil(value / step)))
    if model_limit and 8 <= model_limit < suggested:
        suggested = model_limit
    return int(suggested)


def histogram(lengths: list[int], bins: int = 30) -> Histogram:
    if not lengths:
        return Histogram([], [])
    counts, edges = np.histogram(np.array(lengths), bins=min(bins, max(1, len(set(lengths)))))
    return Histogram([float(e) for e in edges], [int(c) for c in counts])


def _stats(lengths: list[int]) -> dict[str, float]:
    arr = np.array(lengths or [0], dtype=float)
    return {"min": float(arr.min()), "median": float(np.median(arr)), "mean": round(float(arr.mean()), 1),
            "p95": float(np.percentile(arr, 95)), "max": float(arr.max())}


def _duplicates(data: PreparedData) -> tuple[int, int]:
    """(rows repeating an earlier row's input, distinct inputs that appear with more than one label)."""
    keys = [input_key(e) for e in data.examples]
    counts = Counter(keys)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    if data.task != TrainTask.CLASSIFICATION:
        return duplicates, 0
    labels: dict[str, set[int]] = {}
    for key, example in zip(keys, data.examples, strict=True):
        labels.setdefault(key, set()).add(example["label"])
    return duplicates, sum(1 for found in labels.values() if len(found) > 1)


def _near_empty(data: PreparedData, chars: int) -> int:
    def content(example: dict) -> str:
        return str(example.get("text") if "text" in example else example.get("response", ""))

    return sum(1 for e in data.examples if len(WORD.findall(content(e))) < chars)


def _leaks(data: PreparedData, settings: TrainSettings) -> tuple[int, int, int]:
    """(train rows, validation rows, validation rows whose input is also in the train split)."""
    train_idx, val_idx = split(data, settings.val_split, settings.seed, settings.max_val_rows)
    seen = {input_key(data.examples[i]) for i in train_idx}
    return len(train_idx), len(val_idx), sum(1 for i in val_idx if input_key(data.examples[i]) in seen)


class Preflight:
    """Analyses prepared data for a run with ``settings`` on the base model whose tokenizer is given."""

    def __init__(self, config: PreflightConfig | None = None) -> None:
        self.config = config or PreflightConfig()

    def analyse(self, data: PreparedData, settings: TrainSettings, tokenizer: Any, base_model: str = "",
                ) -> PreflightReport:
        lengths = token_lengths(tokenizer, data)
        limit = getattr(tokenizer, "model_max_length", None)
        limit = int(limit) if isinstance(limit, int) and limit < 100_000 else None
        truncated = sum(1 for n in lengths if n > settings.max_length)
        report = PreflightReport(
            task=data.task, base_model=base_model, rows=len(lengths), max_length=settings.max_length,
            lengths=lengths, histogram=histogram(lengths, self.config.bins), length_stats=_stats(lengths),
            truncated=truncated, truncated_share=truncated / max(len(lengths), 1),
            suggested_max_length=suggest_max_length(lengths, self.config.suggest_percentile, limit),
            oversample=bool(getattr(settings, "oversample", False)),
        )
        report.duplicates, report.conflicting = _duplicates(data)
        report.near_empty = _near_empty(data, self.config.near_empty_chars)
        report.train_rows, report.val_rows, report.in_validation = _leaks(data, settings)
        if data.task == TrainTask.CLASSIFICATION:
            self._balance(report, data)
        report.warnings = self._warnings(report)
        return report

    def _balance(self, report: PreflightReport, data: PreparedData) -> None:
        from pipelines.training.balance import balance_counts

        report.label_counts = dict(data.report.label_counts)
        counts = list(report.label_counts.values())
        if counts:
            report.balance_ratio = round(min(counts) / max(counts), 3)
            report.imbalanced = report.balance_ratio < self.config.balance_warn
        if report.oversample:
            report.balanced_counts = balance_counts(report.label_counts)

    def _warnings(self, r: PreflightReport) -> list[Msg]:
        notes: list[Msg] = []
        share = f"{100 * r.truncated_share:.0f}%"
        if r.rows and r.truncated == r.rows:
            notes.append(Msg.of("preflight.warn.all_truncated", max_length=r.max_length,
                                shortest=int(r.length_stats["min"]), suggested=r.suggested_max_length))
        elif r.truncated_share > self.config.truncated_warn:
            notes.append(Msg.of("preflight.warn.truncated", share=share, rows=r.truncated, max_length=r.max_length,
                                suggested=r.suggested_max_length))
        if r.imbalanced and not r.oversample:
            rare = min(r.label_counts, key=r.label_counts.get)
            notes.append(Msg.of("preflight.warn.imbalanced", label=rare, count=r.label_counts[rare],
                                most=max(r.label_counts.values()),
                                threshold=f"{100 * self.config.balance_warn:.0f}%"))
        if r.duplicates:
            notes.append(Msg.of("preflight.warn.duplicates", rows=r.duplicates, conflicting=r.conflicting))
        if r.near_empty:
            notes.append(Msg.of("preflight.warn.near_empty", rows=r.near_empty, chars=self.config.near_empty_chars))
        if r.in_validation:
            notes.append(Msg.of("preflight.warn.leak", rows=r.in_validation, val=r.val_rows))
        return notes


def load_tokenizer(location: str) -> Any:
    """The base model's tokenizer (with a pad token, as the trainer sets it)."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(location)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer
