"""Fix wrong rows, retrain: from a labelled batch result (the Classify tab's ``classified.csv``: the input columns
plus ``predicted_label`` and ``score``; or the Evaluate tab's classification ``predictions.csv``, see
:func:`as_result`) to the rows worth a look, the user's edits, and the training table of a new
run.

- :func:`candidates`: the wrong rows (prediction differs from the gold label) and the low-confidence ones, as the
  corrections table's rows ``[row, text, gold, predicted, confidence, new_label, exclude]`` (``row`` is 1-based, the
  row of the result file; ``new_label`` starts as the gold label).
- :func:`parse_edits`: the edited table (or a JSON list of ``{"row", "label", "exclude"}``) as :class:`Edit`\\ s.
- :func:`corrected_rows`: the result rows with the new labels, excluded rows left out, and the counts.
- :func:`training_frame`: the data of the new run: the source run's training rows (when the batch used ``run:<id>``)
  plus the corrected batch rows; a text in both takes the corrected label, an excluded text leaves both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.columns import guess_column
from pipelines.errors import InputError
from pipelines.messages import Msg

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.training.data import PreparedData

PREDICTED = "predicted_label"
SCORE = "score"
LOW_CONFIDENCE = 0.6
MAX_ROWS = 500
COLUMNS = ("row", "text", "gold", "predicted", "confidence", "new_label", "exclude")
TEXT, LABEL = "text", "label"  # the columns of the written training file
EVAL_OUTPUT, EVAL_CORRECT = " | output", " | correct"  # the Evaluate tab's per-model columns


@dataclass(frozen=True)
class Edit:
    """One row of the corrections table as the user left it (``row`` is 1-based)."""

    row: int
    label: str | None
    exclude: bool = False


@dataclass
class Corrected:
    """The batch rows after the edits, and what changed."""

    texts: list[str]
    labels: list[str]
    relabelled: int = 0
    excluded_texts: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # the kept rows' 0-based positions in the result

    @property
    def counts(self) -> dict[str, int]:
        return {"corrected_labels": self.relabelled, "excluded_rows": len(self.excluded_texts)}


def result_columns(columns: list[str], text_column: str | None, label_column: str | None) -> tuple[str, str]:
    """The text and gold-label columns of a batch result (given, else guessed); raises when the result has no
    predictions or no label column."""
    if PREDICTED not in columns:
        raise InputError("corrections.not_a_result", column=PREDICTED)
    free = [c for c in columns if c not in (PREDICTED, SCORE)]
    text = (text_column or "").strip() or guess_column(free, "text") or (free[0] if free else "")
    label = (label_column or "").strip() or guess_column(free, "label", [text]) or ""
    for name in (text, label):
        if not name:
            raise InputError("corrections.need_label_column")
        if name not in columns:
            raise InputError("corrections.no_column", column=name, columns=", ".join(columns)[:300])
    if text == label:
        raise InputError("corrections.need_label_column")
    return text, label


def as_result(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """A batch result as it is, or the Evaluate tab's classification ``predictions.csv`` (``input``,
    ``reference``, ``<model> | output``, ``<model> | correct``) as one: ``text``, ``label``, the first model's
    predictions (no confidence: only its wrong rows are listed), and that model's reference."""
    import pandas as pd

    if PREDICTED in frame.columns:
        return frame, ""
    outputs = [c for c in frame.columns if str(c).endswith(EVAL_OUTPUT)]
    scored = [c for c in frame.columns if str(c).endswith(EVAL_CORRECT)]
    if not ({"input", "reference"} <= set(frame.columns) and outputs and scored):
        return frame, ""
    converted = pd.DataFrame({TEXT: frame["input"], LABEL: frame["reference"], PREDICTED: frame[outputs[0]]})
    return converted, str(outputs[0])[: -len(EVAL_OUTPUT)]


def _score(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 1.0


def candidates(frame: pd.DataFrame, text_column: str, label_column: str, threshold: float = LOW_CONFIDENCE,
               max_rows: int = MAX_ROWS) -> list[list[Any]]:
    """The wrong rows (first, least confident first) and the rows predicted below ``threshold``, as table rows
    (without a ``score`` column, as from the Evaluate tab: the wrong rows, confidence left blank)."""
    rows = []
    scored = SCORE in frame.columns
    for i, (text, gold, predicted, score) in enumerate(zip(
            frame[text_column], frame[label_column], frame[PREDICTED],
            frame[SCORE] if scored else [None] * len(frame), strict=True)):
        gold, predicted, confidence = str(gold).strip(), str(predicted).strip(), _score(score)
        wrong = gold != predicted
        if wrong or confidence < threshold:
            shown = round(confidence, 4) if scored else None
            rows.append((not wrong, confidence, [i + 1, str(text), gold, predicted, shown, gold, False]))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows[:max_rows]]


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "x", "✓")
    return bool(value) and value == value  # NaN is not an exclusion


def parse_edits(edits: Any) -> list[Edit]:
    """The corrections table (a DataFrame, ``{"data": rows}``, a list of rows in :data:`COLUMNS` order) or a JSON
    list of ``{"row", "label", "exclude"}`` objects, as edits."""
    if isinstance(edits, str):
        try:
            edits = json.loads(edits or "[]")
        except ValueError:
            raise InputError("corrections.bad_edits") from None
    if hasattr(edits, "values") and hasattr(edits, "columns"):  # a pandas DataFrame
        edits = edits.values.tolist()
    if isinstance(edits, dict):
        edits = edits.get("data") or []
    if not isinstance(edits, list):
        raise InputError("corrections.bad_edits")
    out = []
    for item in edits:
        try:
            if isinstance(item, dict):
                row, label, exclude = int(item["row"]), item.get("label"), _truthy(item.get("exclude", False))
            else:
                row, label, exclude = int(float(item[0])), item[5], _truthy(item[6])
        except (KeyError, IndexError, TypeError, ValueError):
            raise InputError("corrections.bad_edits") from None
        label = None if label is None or label != label else str(label).strip() or None
        out.append(Edit(row, label, exclude))
    return out


def corrected_rows(frame: pd.DataFrame, text_column: str, label_column: str, edits: list[Edit]) -> Corrected:
    """Every result row with its label after ``edits`` (excluded rows left out); counts the changed labels."""
    by_row = {e.row: e for e in edits}
    if any(not 1 <= row <= len(frame) for row in by_row):
        raise InputError("corrections.bad_row", rows=len(frame))
    out = Corrected([], [])
    for i, (text, gold) in enumerate(zip(frame[text_column], frame[label_column], strict=True), start=1):
        text, gold, edit = str(text).strip(), str(gold).strip(), by_row.get(i)
        if edit is not None and edit.exclude:
            out.excluded_texts.append(text)
            continue
        label = edit.label if edit is not None and edit.label else gold
        out.relabelled += label != gold
        out.texts.append(text)
        out.labels.append(label)
        out.rows.append(i - 1)
    return out


def training_frame(corrected: Corrected, source: PreparedData | None = None) -> pd.DataFrame:
    """The new run's table (``text``, ``label``): the source run's rows (if any) and the corrected batch rows; a
    text in both keeps one row with the corrected label; excluded texts are left out of both."""
    import pandas as pd

    rows: dict[str, str] = {}
    if source is not None:
        for example in source.examples:
            if not example.get("augmented"):
                rows[example["text"]] = source.labels[example["label"]]
    for text in corrected.excluded_texts:
        rows.pop(text, None)
    excluded = set(corrected.excluded_texts)
    for text, label in zip(corrected.texts, corrected.labels, strict=True):
        if text not in excluded:
            rows[text] = label
    return pd.DataFrame({TEXT: list(rows), LABEL: list(rows.values())})


def annotate(corrected: Corrected, source_rows: int) -> Any:
    """The ``adjust`` hook of the new run's start: counts the corrections in its data report."""

    def adjust(data: PreparedData) -> PreparedData:
        data.report.counts = {**data.report.counts, **corrected.counts, "source_rows": source_rows}
        data.report.notes = [*data.report.notes, Msg.of(
            "corrections.report", corrected=corrected.relabelled, excluded=len(corrected.excluded_texts),
            source=source_rows)]
        return data

    return adjust


def accuracy(truth: list[str], predicted: list[str]) -> dict[str, Any]:
    """Accuracy and macro-F1 (``{}`` for no rows)."""
    from pipelines.tasks.metrics import classification_metrics

    return classification_metrics(truth, predicted)


def batch_metrics(frame: pd.DataFrame, label_column: str) -> dict[str, Any]:
    """The batch run's accuracy and macro-F1 against the labels as uploaded."""
    return accuracy([str(v).strip() for v in frame[label_column]], [str(v).strip() for v in frame[PREDICTED]])


def comparison(before: dict[str, Any], after: dict[str, Any] | None, run: str, val: Any = None,
               previous: Any = None) -> Msg:
    """The before/after line: the batch's accuracy, the new run's on the same rows (corrected labels), and the
    runs' validation accuracy (the previous run's when the batch used one)."""

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{float(value):.3f}"

    params = {"before": fmt(before.get("accuracy")), "rows": before.get("count", 0),
              "after": fmt((after or {}).get("accuracy")), "after_rows": (after or {}).get("count", 0), "run": run,
              "val": fmt(val)}
    if previous is None:
        return Msg.of("corrections.before_after_new", **params)
    return Msg.of("corrections.before_after", **params, previous=fmt(previous))
