"""What to evaluate: the task, the columns, the models and the options; and the rows read from the table."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from pipelines.columns import guess_column
from pipelines.errors import InputError
from pipelines.messages import Msg

if TYPE_CHECKING:
    from pipelines.tables import Table

MIN_MODELS, MAX_MODELS = 1, 4
DEFAULT_ROWS = 200
DEFAULT_RESAMPLES = 1000


class EvalTask(StrEnum):
    """The evaluation task (``auto`` picks one from the columns)."""

    AUTO = "auto"
    CLASSIFICATION = "classification"
    GENERATION = "generation"
    LANGUAGE_MODELLING = "lm"


def parse_models(models: str | list[str] | None) -> tuple[str, ...]:
    """One to four model references (a list, or text separated by commas or new lines), de-duplicated in order."""
    items = models if isinstance(models, list | tuple) else re.split(r"[,\n，]", models or "")
    refs = tuple(dict.fromkeys(str(m).strip() for m in items if m and str(m).strip()))
    if not MIN_MODELS <= len(refs) <= MAX_MODELS:
        raise InputError("evaluate.model_count", count=len(refs), minimum=MIN_MODELS, maximum=MAX_MODELS)
    return refs


@dataclass(frozen=True)
class EvalOptions:
    """Row cap, generation length, bootstrap resamples and seed, mini-batch size."""

    max_rows: int = DEFAULT_ROWS
    max_new_tokens: int = 48
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    batch_size: int = 8

    def checked(self, row_cap: int) -> EvalOptions:
        """The options within the app's limits (a clear error for nonsense values)."""
        for name, value, low, high in (("max_rows", self.max_rows, 1, row_cap),
                                       ("max_new_tokens", self.max_new_tokens, 1, 512),
                                       ("resamples", self.resamples, 0, 10_000)):
            if not low <= int(value) <= high:
                raise InputError("evaluate.option_range", name=name, value=value, low=low, high=high)
        return EvalOptions(int(self.max_rows), int(self.max_new_tokens), int(self.resamples), int(self.seed),
                           max(1, int(self.batch_size)))


@dataclass
class EvalData:
    """The rows to score: inputs, targets (None for language modelling), spreadsheet row numbers, notes."""

    task: EvalTask
    input_column: str
    target_column: str | None
    inputs: list[str]
    targets: list[str] | None
    row_numbers: list[int]
    labels: list[str] = field(default_factory=list)
    notes: list[Msg] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inputs)


def _column(table: Table, requested: str | None, roles: tuple[str, ...], taken: tuple[str, ...] = ()) -> str | None:
    requested = (requested or "").strip()
    if requested:
        if requested not in table.columns:
            raise InputError("evaluate.no_column", column=requested, columns=", ".join(table.columns))
        return requested
    for role in roles:
        guess = guess_column(table.columns, role, taken)
        if guess:
            return guess
    return None


def looks_like_labels(values: list[str]) -> bool:
    """Whether a target column holds class labels: few distinct short values, repeated across rows."""
    distinct = {v.strip() for v in values if v.strip()}
    return 2 <= len(distinct) <= max(2, min(50, len(values) // 2)) and all(len(v) <= 40 for v in distinct)


ROLES = MappingProxyType({
    EvalTask.CLASSIFICATION: (("text", "prompt"), ("label",)),
    EvalTask.GENERATION: (("prompt", "text"), ("response", "reference")),
    EvalTask.LANGUAGE_MODELLING: (("text", "prompt"), ()),
})


def _auto_task(table: Table, target_column: str | None) -> EvalTask:
    target = (target_column or "").strip()
    if target:
        if target not in table.columns:
            raise InputError("evaluate.no_column", column=target, columns=", ".join(table.columns))
        values = [str(v) for v in table.frame[target].tolist()]
        return EvalTask.CLASSIFICATION if looks_like_labels(values) else EvalTask.GENERATION
    if _column(table, None, ("label",)):
        return EvalTask.CLASSIFICATION
    if _column(table, None, ("response", "reference")):
        return EvalTask.GENERATION
    return EvalTask.LANGUAGE_MODELLING


def infer_task(table: Table, task: str | None, input_column: str | None,
               target_column: str | None) -> tuple[EvalTask, str, str | None]:
    """The task and its (input, target) columns: the ones given, else guessed from the column names."""
    value = (task or EvalTask.AUTO.value).strip().lower()
    if value not in {t.value for t in EvalTask}:
        raise InputError("evaluate.unknown_task", task=value, choices=", ".join(t.value for t in EvalTask))
    wanted = EvalTask(value)
    if wanted == EvalTask.AUTO:
        wanted = _auto_task(table, target_column)
    inputs, targets = ROLES[wanted]
    target = _column(table, target_column, targets) if targets else None
    source = _column(table, input_column, inputs, (target,) if target else ())
    source = source or next((c for c in table.columns if c != target), table.columns[0])
    if targets and not target:
        raise InputError("evaluate.no_target", task=Msg.of(f"evaluate.task_{wanted.value}"))
    return wanted, source, target


def read_rows(table: Table, task: str, input_column: str | None, target_column: str | None,
              max_rows: int) -> EvalData:
    """The rows to score (non-empty input and target), capped at ``max_rows`` with a note saying so."""
    kind, source, target = infer_task(table, task, input_column, target_column)
    frame = table.frame
    targets = [str(frame[target].iloc[i]) for i in range(len(frame))] if target else None
    rows = [table.row_of(i) for i in range(len(frame))]
    return build_data(kind, [str(v) for v in frame[source].tolist()], targets, max_rows, source, target, rows)


def build_data(task: EvalTask | str, inputs: list[str], targets: list[str] | None, max_rows: int,
               input_column: str = "input", target_column: str | None = "target", row_numbers: list[int] | None = None,
               labels: list[str] | None = None) -> EvalData:
    """Rows in memory as :class:`EvalData`: rows with an empty input (or target) skipped, capped at ``max_rows``,
    a note for each; classification labels in the app's usual order unless ``labels`` are given."""
    from pipelines.labels import order_labels

    kind = EvalTask(task)
    if kind == EvalTask.AUTO:
        raise InputError("evaluate.unknown_task", task=kind.value, choices=", ".join(t.value for t in EvalTask
                                                                                   if t != EvalTask.AUTO))
    if kind != EvalTask.LANGUAGE_MODELLING and targets is None:
        raise InputError("evaluate.no_target", task=Msg.of(f"evaluate.task_{kind.value}"))
    numbers = row_numbers or list(range(1, len(inputs) + 1))
    wanted = targets if kind != EvalTask.LANGUAGE_MODELLING else None
    rows = []
    for i, value in enumerate(inputs):
        ref = str(wanted[i]).strip() if wanted is not None else ""
        if str(value).strip() and (ref or wanted is None):
            rows.append((str(value), ref, numbers[i]))
    skipped = len(inputs) - len(rows)
    notes: list[Msg] = [Msg.of("evaluate.rows_skipped", count=skipped)] if skipped else []
    if not rows:
        raise InputError("evaluate.no_rows")
    if len(rows) > max_rows:
        notes.append(Msg.of("evaluate.rows_capped", used=max_rows, total=len(rows)))
        rows = rows[:max_rows]
    kept = [r[1] for r in rows] if wanted is not None else None
    found = list(labels) if labels else list(order_labels(kept)[0]) if kind == EvalTask.CLASSIFICATION else []
    if kind == EvalTask.CLASSIFICATION and len(found) < 2:
        raise InputError("evaluate.too_few_labels", column=target_column)
    return EvalData(kind, input_column, target_column if wanted is not None else None, [r[0] for r in rows], kept,
                    [r[2] for r in rows], found, notes)
