"""Label order (pipelines.labels.order_labels): numbers by value, text case-insensitively, independent of row
order; the same order gives training its class ids and the metrics their confusion-matrix order."""

from __future__ import annotations

import random

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.labels import order_labels
from pipelines.tables import Table
from pipelines.tasks.metrics import classification_metrics
from pipelines.training.data import ColumnMapping, prepare


def test_text_labels_sorted_case_insensitively() -> None:
    labels, numeric = order_labels(["pos", "Neg", "neutral", "pos", "neg"])
    assert labels == ("Neg", "neg", "neutral", "pos")  # case-insensitive, then upper case first
    assert not numeric


def test_numeric_labels_sorted_by_value_and_kept_as_strings() -> None:
    labels, numeric = order_labels(["10", "2", "-1", "2", "0.5", "1e1"])
    assert numeric
    assert labels == ("-1", "0.5", "2", "10", "1e1")  # 10 == 1e1: ties broken by the text


def test_mixed_numbers_and_words_sort_as_text() -> None:
    assert order_labels(["2", "10", "x"]) == (("10", "2", "x"), False)


def test_empty() -> None:
    assert order_labels([]) == ((), False)


def test_training_and_metrics_share_the_order() -> None:
    rows = [{"text": f"row {i}", "label": label} for i, label in enumerate(["10", "2", "9"] * 2)]
    data = prepare(Table(pd.DataFrame(rows), "utf-8", ","), "classification", ColumnMapping("text", "label"))
    assert tuple(data.labels) == order_labels(["10", "2", "9"])[0] == ("2", "9", "10")
    assert classification_metrics(["10", "2", "9"], ["2", "2", "9"])["labels"] == list(data.labels)


LABEL = st.one_of(
    st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=8),
    st.integers(-1000, 1000).map(str),
    st.decimals(-100, 100, places=2, allow_nan=False).map(str),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(LABEL, min_size=1, max_size=40), st.randoms())
def test_properties(values, rnd: random.Random) -> None:
    labels, numeric = order_labels(values)
    assert set(labels) == set(values) and len(labels) == len(set(values))  # each label once
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert order_labels(shuffled) == (labels, numeric)  # the order does not depend on the rows' order
    if numeric:
        numbers = [float(label) for label in labels]
        assert numbers == sorted(numbers)
    else:
        folded = [label.casefold() for label in labels]
        assert folded == sorted(folded)
