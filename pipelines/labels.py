"""The order of classification labels: stable and readable, numbers by value.

When every label is a number (``"0"``, ``"2"``, ``"10"``, ``"-1"``, ``"3.5"``) the labels are sorted by value and
kept as the strings the file had (so ``"2"`` comes before ``"10"``); otherwise they are sorted case-insensitively.
The same set of labels therefore always gets the same class ids, whatever the order of the rows. Used by training
(class ids) and by the metrics (confusion-matrix order).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from pipelines.tables import NUMBER


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
