"""Label mapping for classification data: label text <-> class id, with a stable, readable order.

Order: when every label is a number (``"0"``, ``"2"``, ``"10"``, ``"-1"``, ``"3.5"``) the labels are sorted by
value and kept as the strings the file had; otherwise they are sorted case-insensitively. The same set of labels
therefore always gets the same ids, whatever the order of the rows. Labels are stripped of surrounding spaces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from pipelines.errors import InputError
from pipelines.tables import NUMBER

DEFAULT_MAX_LABELS = 100
MAX_LABEL_CHARS = 200


@dataclass(frozen=True)
class LabelMap:
    """Class ids for a classification column; ``labels[i]`` is the label of class id ``i``."""

    labels: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict, compare=False)
    numeric: bool = False
    notes: tuple[str, ...] = ()

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, values: Iterable[object], row_numbers: Sequence[int] | None = None) -> list[int]:
        """Class ids for ``values``; an unknown label raises :class:`InputError` naming its row."""
        index = self.label2id
        ids = []
        for i, value in enumerate(values):
            label = _clean(value)
            if label not in index:
                where = f" in row {row_numbers[i]}" if row_numbers is not None and i < len(row_numbers) else ""
                raise InputError(f"The label '{label[:60]}'{where} is not one of the known classes.")
            ids.append(index[label])
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.labels[int(i)] for i in ids]


def _clean(value: object) -> str:
    return "" if value is None else str(value).strip()


def _number(label: str) -> Decimal | None:
    if not NUMBER.fullmatch(label):
        return None
    try:
        return Decimal(label)
    except InvalidOperation:
        return None


def order_labels(labels: Iterable[str]) -> tuple[tuple[str, ...], bool]:
    """Distinct labels in the stable order described above, and whether they are all numbers."""
    distinct = set(labels)
    numbers = {label: _number(label) for label in distinct}
    if distinct and all(n is not None for n in numbers.values()):
        return tuple(sorted(distinct, key=lambda label: (numbers[label], label))), True
    return tuple(sorted(distinct, key=lambda label: (label.casefold(), label))), False


def build_label_map(
    values: Iterable[object],
    max_labels: int = DEFAULT_MAX_LABELS,
    *,
    row_numbers: Sequence[int] | None = None,
    column: str = "label",
) -> LabelMap:
    """Build a :class:`LabelMap` from a label column, or raise :class:`InputError` with one clear sentence.

    ``row_numbers`` (e.g. ``Table.row_numbers``) lets messages name the spreadsheet row of an empty label.
    """
    cleaned = [_clean(v) for v in values]
    if not cleaned:
        raise InputError(f"The '{column}' column has no values.")
    for i, label in enumerate(cleaned):
        if not label:
            row = row_numbers[i] if row_numbers is not None and i < len(row_numbers) else i + 2
            raise InputError(f"Row {row} has an empty '{column}'; fill it in or remove the row.")
        if len(label) > MAX_LABEL_CHARS:
            row = row_numbers[i] if row_numbers is not None and i < len(row_numbers) else i + 2
            raise InputError(
                f"Row {row} has a '{column}' of {len(label):,} characters; labels are short class names "
                "-- is this the text column?"
            )
    counts = Counter(cleaned)
    if len(counts) < 2:
        raise InputError(
            f"Classification needs at least two classes, but the '{column}' column only has "
            f"'{cleaned[0][:60]}'."
        )
    if len(counts) > max_labels:
        raise InputError(
            f"The '{column}' column has {len(counts):,} different values; at most {max_labels} classes are "
            "supported -- is this the right column?"
        )
    labels, numeric = order_labels(counts)
    rare = [label for label in labels if counts[label] == 1]
    notes = ()
    if rare:
        shown = ", ".join(f"'{label[:30]}'" for label in rare[:5]) + (", ..." if len(rare) > 5 else "")
        what = "1 class has" if len(rare) == 1 else f"{len(rare)} classes have"
        notes = (f"{what} a single example ({shown}); the model cannot learn much from that.",)
    return LabelMap(labels=labels, counts={label: counts[label] for label in labels}, numeric=numeric, notes=notes)
