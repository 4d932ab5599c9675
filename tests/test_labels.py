"""Label mapping for classification data: order, numeric labels, refusals, and properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.errors import InputError
from pipelines.labels import build_label_map


def refusal(values, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        build_label_map(values, **kwargs)
    return str(info.value)


def test_text_labels_sorted_case_insensitively_and_stripped():
    label_map = build_label_map(["pos", "Neg ", "neutral", " pos", "neg"])
    assert label_map.labels == ("Neg", "neg", "neutral", "pos")  # case-insensitive, then upper case first
    assert label_map.counts == {"Neg": 1, "neg": 1, "neutral": 1, "pos": 2}
    assert not label_map.numeric
    assert label_map.encode(["pos", "neg"]) == [3, 1]
    assert label_map.decode([0, 3]) == ["Neg", "pos"]
    assert label_map.id2label == {0: "Neg", 1: "neg", 2: "neutral", 3: "pos"}


def test_numeric_labels_sorted_by_value_and_kept_as_strings():
    label_map = build_label_map(["10", "2", "-1", "2", "0.5", "1e1"])
    assert label_map.numeric
    assert label_map.labels == ("-1", "0.5", "2", "10", "1e1")  # 10 == 1e1: ties broken by the text
    assert label_map.label2id["10"] == 3


def test_mixed_numbers_and_words_sort_as_text():
    assert build_label_map(["2", "10", "x"]).labels == ("10", "2", "x")


def test_single_class():
    assert "needs at least two classes" in refusal(["pos", "pos ", "pos"])


def test_too_many_labels():
    message = refusal([f"c{i}" for i in range(30)], max_labels=20)
    assert "30 different values" in message and "at most 20" in message


def test_empty_label_names_the_row():
    message = refusal(["a", "b", " "], row_numbers=[2, 5, 9])
    assert message == "Row 9 has an empty 'label'; fill it in or remove the row."
    assert refusal(["a", ""]).startswith("Row 3 has an empty")


def test_text_column_picked_as_label():
    assert "is this the text column" in refusal(["a", "x" * 500])


def test_no_values():
    assert "no values" in refusal([])


def test_unknown_label_on_encode_names_the_row():
    label_map = build_label_map(["a", "b"])
    with pytest.raises(InputError, match="'c' in row 7"):
        label_map.encode(["a", "c"], row_numbers=[6, 7])


def test_rare_classes_get_a_note():
    assert "single example" in build_label_map(["a", "a", "b"]).notes[0]
    assert build_label_map(["a", "a", "b", "b"]).notes == ()


LABEL = st.one_of(
    st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=8),
    st.integers(-1000, 1000).map(str),
    st.decimals(-100, 100, places=2, allow_nan=False).map(str),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(LABEL, min_size=2, max_size=40), st.randoms())
def test_properties(values, rnd: random.Random):
    distinct = {v.strip() for v in values}
    if len(distinct) < 2 or "" in distinct:
        with pytest.raises(InputError):
            build_label_map(values)
        return
    label_map = build_label_map(values)
    # every label gets one id, ids are 0..n-1, encode/decode round-trips
    assert set(label_map.labels) == distinct and len(label_map) == len(distinct)
    assert label_map.decode(label_map.encode(values)) == [v.strip() for v in values]
    assert sum(label_map.counts.values()) == len(values)
    # the order does not depend on the order of the rows
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert build_label_map(shuffled).labels == label_map.labels
    # numeric labels come out in increasing value
    if label_map.numeric:
        numbers = [float(label) for label in label_map.labels]
        assert numbers == sorted(numbers)
