"""Dataset preparation: a parsed table plus a column mapping -> examples and a report of what is used."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from pipelines.columns import guess_column
from pipelines.errors import InputError
from pipelines.tables import Table
from pipelines.training.settings import check_task

MAX_LABELS = 100
MAX_TEXT_CHARS = 20_000
MIN_ROWS = {"classification": 4, "causal-lm": 2}


@dataclass
class ColumnMapping:
    """Which table columns feed the task; unused ones are ``None``."""

    text: str | None = None
    label: str | None = None
    prompt: str | None = None
    response: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"text": self.text, "label": self.label, "prompt": self.prompt, "response": self.response}


@dataclass
class DataReport:
    """What will be used: rows kept/dropped with reasons, label counts, text-length statistics."""

    rows_total: int
    rows_kept: int
    dropped: dict[str, int] = field(default_factory=dict)
    label_counts: dict[str, int] = field(default_factory=dict)
    length_chars: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "rows_total": self.rows_total, "rows_kept": self.rows_kept, "dropped": self.dropped,
            "label_counts": self.label_counts, "length_chars": self.length_chars, "notes": self.notes,
        }

    def to_markdown(self) -> str:
        lines = [f"**{self.rows_kept}** of {self.rows_total} rows will be used."]
        for reason, count in self.dropped.items():
            lines.append(f"- dropped {count}: {reason}")
        if self.label_counts:
            counts = ", ".join(f"`{k}` {v}" for k, v in self.label_counts.items())
            lines.append(f"\n**{len(self.label_counts)} labels:** {counts}")
        if self.length_chars:
            s = self.length_chars
            lines.append(
                f"\n**Text length (characters):** min {s['min']:.0f}, median {s['median']:.0f}, "
                f"mean {s['mean']:.0f}, 95th percentile {s['p95']:.0f}, max {s['max']:.0f}"
            )
        lines.extend(f"\n_{note}_" for note in self.notes)
        return "\n".join(lines)


@dataclass
class PreparedData:
    """Clean examples for one task. Classification: ``{"text", "label"}`` with ``label`` an index into
    ``labels``; causal LM: ``{"prompt", "response"}`` or ``{"text"}``."""

    task: str
    examples: list[dict]
    labels: list[str]
    report: DataReport

    @property
    def targets(self) -> list[int]:
        return [e["label"] for e in self.examples] if self.task == "classification" else []


def guess_mapping(columns: list[str], task: str) -> ColumnMapping:
    """A sensible default mapping from column names (first/second columns as a fallback)."""
    check_task(task)
    if task == "classification":
        text = guess_column(columns, "text") or (columns[0] if columns else None)
        label = guess_column(columns, "label", [text])
        if label is None:
            rest = [c for c in columns if c != text]
            label = rest[-1] if rest else None
        return ColumnMapping(text=text, label=label)
    prompt = guess_column(columns, "prompt")
    response = guess_column(columns, "response", [prompt])
    if prompt and response:
        return ColumnMapping(prompt=prompt, response=response)
    return ColumnMapping(text=guess_column(columns, "text") or (columns[0] if columns else None))


def _require(table: Table, name: str | None, role: str) -> str:
    if not name:
        raise InputError(f"Choose the {role} column.")
    if name not in table.columns:
        raise InputError(f"The file has no column named '{name}' (columns: {', '.join(table.columns)}).")
    return name


def _length_stats(texts: list[str]) -> dict[str, float]:
    if not texts:
        return {}
    lengths = np.array([len(t) for t in texts], dtype=float)
    return {
        "min": float(lengths.min()), "median": float(np.median(lengths)), "mean": float(lengths.mean()),
        "p95": float(np.percentile(lengths, 95)), "max": float(lengths.max()),
    }


def prepare(table: Table, task: str, mapping: ColumnMapping, *, max_labels: int = MAX_LABELS) -> PreparedData:
    """Clean the rows for ``task``; raise :class:`InputError` when too little (or too much) is left."""
    check_task(task)
    frame = table.frame
    dropped: Counter[str] = Counter()
    examples: list[dict] = []
    notes = list(table.notes)
    if task == "classification":
        text_col, label_col = _require(table, mapping.text, "text"), _require(table, mapping.label, "label")
        if text_col == label_col:
            raise InputError("The text and label columns must be different.")
        raw = []
        for text, label in zip(frame[text_col], frame[label_col], strict=True):
            text, label = str(text).strip(), str(label).strip()
            if not text:
                dropped["empty text"] += 1
            elif not label:
                dropped["empty label"] += 1
            elif len(text) > MAX_TEXT_CHARS:
                dropped[f"text longer than {MAX_TEXT_CHARS} characters"] += 1
            else:
                raw.append((text, label))
        counts = Counter(label for _, label in raw)
        singles = {label for label, n in counts.items() if n < 2}
        if singles:
            dropped["label appears only once (cannot be split for validation)"] += sum(counts[s] for s in singles)
            raw = [(t, lab) for t, lab in raw if lab not in singles]
            counts = Counter(label for _, label in raw)
        if len(counts) > max_labels:
            raise InputError(
                f"The label column has {len(counts)} different values; the limit is {max_labels}. "
                "Is the right column chosen?"
            )
        labels = sorted(counts)
        index = {label: i for i, label in enumerate(labels)}
        examples = [{"text": t, "label": index[lab]} for t, lab in raw]
        texts = [t for t, _ in raw]
        if examples and len(labels) < 2:
            raise InputError("Classification needs at least two different labels with two rows each.")
        label_counts = {label: counts[label] for label in labels}
    else:
        labels, label_counts = [], {}
        if mapping.prompt or mapping.response:
            p_col, r_col = _require(table, mapping.prompt, "prompt"), _require(table, mapping.response, "response")
            for prompt, response in zip(frame[p_col], frame[r_col], strict=True):
                prompt, response = str(prompt).strip(), str(response).strip()
                if not prompt:
                    dropped["empty prompt"] += 1
                elif not response:
                    dropped["empty response"] += 1
                elif len(prompt) + len(response) > MAX_TEXT_CHARS:
                    dropped[f"prompt and response longer than {MAX_TEXT_CHARS} characters"] += 1
                else:
                    examples.append({"prompt": prompt, "response": response})
            texts = [e["prompt"] + "\n" + e["response"] for e in examples]
        else:
            t_col = _require(table, mapping.text, "text")
            for text in frame[t_col]:
                text = str(text).strip()
                if not text:
                    dropped["empty text"] += 1
                elif len(text) > MAX_TEXT_CHARS:
                    dropped[f"text longer than {MAX_TEXT_CHARS} characters"] += 1
                else:
                    examples.append({"text": text})
            texts = [e["text"] for e in examples]
    report = DataReport(len(frame), len(examples), dict(dropped), label_counts, _length_stats(texts), notes)
    if len(examples) < MIN_ROWS[task]:
        raise InputError(
            f"Only {len(examples)} usable rows; at least {MIN_ROWS[task]} are needed. " + report.to_markdown()
        )
    return PreparedData(task, examples, labels, report)


def split(data: PreparedData, val_fraction: float, seed: int, max_val: int = 500) -> tuple[list[int], list[int]]:
    """Train/validation row indices; stratified by label for classification. Both parts are non-empty."""
    n = len(data.examples)
    n_val = min(max(1, round(n * val_fraction)), n - 1, max_val)
    if data.task == "classification":
        from sklearn.model_selection import train_test_split

        n_val = max(n_val, len(data.labels)) if n - n_val >= len(data.labels) else n_val
        try:
            train_idx, val_idx = train_test_split(
                list(range(n)), test_size=n_val, random_state=seed, stratify=data.targets
            )
        except ValueError:  # too few rows per class to stratify: plain random split
            train_idx, val_idx = train_test_split(list(range(n)), test_size=n_val, random_state=seed)
        return sorted(train_idx), sorted(val_idx)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[n_val:]), sorted(order[:n_val])
