"""Balancing the training split of a classifier by oversampling: rows of rare labels are repeated (a seeded
random choice) until every label has as many rows as the most frequent one. Only the train indices change; the
validation split keeps the true label distribution, so its metrics stay honest."""

from __future__ import annotations

import random
from collections import defaultdict


def oversample(indices: list[int], targets: list[int], seed: int) -> list[int]:
    """``indices`` (rows of the train split) plus repeats of minority-label rows; ``targets[i]`` is row i's label."""
    by_label: dict[int, list[int]] = defaultdict(list)
    for i in indices:
        by_label[targets[i]].append(i)
    if len(by_label) < 2:
        return list(indices)
    largest = max(len(rows) for rows in by_label.values())
    rng = random.Random(seed)
    extra: list[int] = []
    for label in sorted(by_label):
        rows = by_label[label]
        whole, rest = divmod(largest - len(rows), len(rows))
        extra.extend(rows * whole)
        extra.extend(rng.sample(rows, rest))
    return sorted([*indices, *extra])


def balance_counts(counts: dict[str, int]) -> dict[str, int]:
    """The label counts after :func:`oversample`: every label at the largest count."""
    largest = max(counts.values(), default=0)
    return {label: largest for label in counts}
