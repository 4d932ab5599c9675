"""Dataset preparation: a parsed table plus a column mapping -> examples and a report of what is used."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from pipelines.columns import guess_column
from pipelines.errors import InputError
from pipelines.labels import order_labels
from pipelines.messages import Msg, render
from pipelines.tables import Table
from pipelines.training.enums import TrainTask
from pipelines.training.settings import check_task

MAX_LABELS = 100
MAX_TEXT_CHARS = 20_000
MIN_ROWS = MappingProxyType({TrainTask.CLASSIFICATION: 4, TrainTask.CAUSAL_LM: 2, TrainTask.DOMAIN: 2,
                             TrainTask.DOMAIN_MLM: 2})
# Why rows are dropped: the keys of ``DataReport.dropped``; each has a text "training.drop.<reason>".
DROP_REASONS = ("empty_text", "empty_label", "text_too_long", "single_label", "empty_prompt", "empty_response",
                "pair_too_long")


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
    dropped: dict[str, int] = field(default_factory=dict)  # reason (DROP_REASONS) -> rows
    label_counts: dict[str, int] = field(default_factory=dict)
    length_chars: dict[str, float] = field(default_factory=dict)
    notes: list[Msg | str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # rows added or changed: augmentation, corrections

    def to_dict(self) -> dict:
        return {
            "rows_total": self.rows_total, "rows_kept": self.rows_kept, "dropped": self.dropped,
            "label_counts": self.label_counts, "length_chars": self.length_chars,
            "notes": [str(note) for note in self.notes], "counts": dict(self.counts),
        }

    def to_markdown(self, lang: str = "en") -> str:
        """The report as Markdown in ``lang``."""
        lines = [render("training.report.kept", lang, {"kept": self.rows_kept, "total": self.rows_total})]
        for reason, count in self.dropped.items():
            why = render(f"training.drop.{reason}", lang, {"limit": f"{MAX_TEXT_CHARS:,}"})
            lines.append(render("training.report.dropped", lang, {"count": count, "reason": why}))
        if self.label_counts:
            counts = ", ".join(f"`{k}` {v}" for k, v in self.label_counts.items())
            lines.append("\n" + render("training.report.labels", lang, {"n": len(self.label_counts), "counts": counts}))
        if self.length_chars:
            s = {k: f"{v:.0f}" for k, v in self.length_chars.items()}
            lines.append("\n" + render("training.report.lengths", lang, s))
        lines.extend(f"\n_{note.render(lang) if isinstance(note, Msg) else note}_" for note in self.notes)
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
        return [e["label"] for e in self.examples] if self.task == TrainTask.CLASSIFICATION else []


def guess_mapping(columns: list[str], task: str) -> ColumnMapping:
    """A sensible default mapping from column names (first/second columns as a fallback)."""
    task = check_task(task)
    if task == TrainTask.CLASSIFICATION:
        text = guess_column(columns, "text") or (columns[0] if columns else None)
        label = guess_column(columns, "label", [text])
        if label is None:
            rest = [c for c in columns if c != text]
            label = rest[-1] if rest else None
        return ColumnMapping(text=text, label=label)
    if task.domain:  # domain adaptation: one text column
        return ColumnMapping(text=guess_column(columns, "text") or (columns[0] if columns else None))
    prompt = guess_column(columns, "prompt")
    response = guess_column(columns, "response", [prompt])
    if prompt and response:
        return ColumnMapping(prompt=prompt, response=response)
    return ColumnMapping(text=guess_column(columns, "text") or (columns[0] if columns else None))


def _require(table: Table, name: str | None, role: str) -> str:
    if not name:
        raise InputError("training.choose_column", role=Msg.of(f"training.role.{role}"))
    if name not in table.columns:
        raise InputError("training.no_column", name=name, columns=", ".join(table.columns)[:300])
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
    task = check_task(task)
    frame = table.frame
    dropped: Counter[str] = Counter()
    examples: list[dict] = []
    notes = list(table.notes)
    if task == TrainTask.CLASSIFICATION:
        text_col, label_col = _require(table, mapping.text, "text"), _require(table, mapping.label, "label")
        if text_col == label_col:
            raise InputError("training.same_columns")
        raw = []
        for text, label in zip(frame[text_col], frame[label_col], strict=True):
            text, label = str(text).strip(), str(label).strip()
            if not text:
                dropped["empty_text"] += 1
            elif not label:
                dropped["empty_label"] += 1
            elif len(text) > MAX_TEXT_CHARS:
                dropped["text_too_long"] += 1
            else:
                raw.append((text, label))
        counts = Counter(label for _, label in raw)
        singles = {label for label, n in counts.items() if n < 2}
        if singles:
            dropped["single_label"] += sum(counts[s] for s in singles)
            raw = [(t, lab) for t, lab in raw if lab not in singles]
            counts = Counter(label for _, label in raw)
        if len(counts) > max_labels:
            raise InputError("training.too_many_labels", count=len(counts), limit=max_labels)
        labels = list(order_labels(counts)[0])  # numbers by value: "2" before "10"
        index = {label: i for i, label in enumerate(labels)}
        examples = [{"text": t, "label": index[lab]} for t, lab in raw]
        texts = [t for t, _ in raw]
        if examples and len(labels) < 2:
            raise InputError("training.two_labels")
        label_counts = {label: counts[label] for label in labels}
    else:
        labels, label_counts = [], {}
        if task.domain:
            from pipelines.training.domain import domain_examples

            # A plain .txt/.md upload is one "text" column whatever the form picked for the file read as a table.
            column = "text" if list(table.columns) == ["text"] else _require(table, mapping.text, "text")
            examples, texts = domain_examples(frame[column], dropped)
        elif mapping.prompt or mapping.response:
            p_col, r_col = _require(table, mapping.prompt, "prompt"), _require(table, mapping.response, "response")
            for prompt, response in zip(frame[p_col], frame[r_col], strict=True):
                prompt, response = str(prompt).strip(), str(response).strip()
                if not prompt:
                    dropped["empty_prompt"] += 1
                elif not response:
                    dropped["empty_response"] += 1
                elif len(prompt) + len(response) > MAX_TEXT_CHARS:
                    dropped["pair_too_long"] += 1
                else:
                    examples.append({"prompt": prompt, "response": response})
            texts = [e["prompt"] + "\n" + e["response"] for e in examples]
        else:
            t_col = _require(table, mapping.text, "text")
            for text in frame[t_col]:
                text = str(text).strip()
                if not text:
                    dropped["empty_text"] += 1
                elif len(text) > MAX_TEXT_CHARS:
                    dropped["text_too_long"] += 1
                else:
                    examples.append({"text": text})
            texts = [e["text"] for e in examples]
    report = DataReport(len(frame), len(examples), dict(dropped), label_counts, _length_stats(texts), notes)
    if len(examples) < MIN_ROWS[task]:
        raise InputError("training.too_few_rows", rows=len(examples), needed=MIN_ROWS[task],
                         total=report.rows_total)
    return PreparedData(task, examples, labels, report)


def split(data: PreparedData, val_fraction: float, seed: int, max_val: int = 500) -> tuple[list[int], list[int]]:
    """Train/validation row indices; stratified by label for classification. Both parts are non-empty.

    Added rows (``"augmented"`` in the example, see :mod:`pipelines.training.augment`) always train: the other rows
    are split as if the added ones were not there, so validation is the same as without augmentation."""
    added = [i for i, e in enumerate(data.examples) if e.get("augmented")]
    if added:
        keep = [i for i, e in enumerate(data.examples) if not e.get("augmented")]
        core = PreparedData(data.task, [data.examples[i] for i in keep], data.labels, data.report)
        train_core, val_core = split(core, val_fraction, seed, max_val)
        return sorted([keep[i] for i in train_core] + added), [keep[i] for i in val_core]
    n = len(data.examples)
    n_val = min(max(1, round(n * val_fraction)), n - 1, max_val)
    if data.task == TrainTask.CLASSIFICATION:
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
