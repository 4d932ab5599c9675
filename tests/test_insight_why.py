"""The Classify tab's "Why this label?" handlers without a server: shaded text for the predicted and another
label, a two-series bar chart with a named PNG download, the HTML download, the JSON endpoint's answer, and the
batch's "why" column switched per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.classify_handlers import ClassifyHandlers
from components.classify_why_handlers import WHY_COLUMN
from pipelines.errors import InputError

LABELS = "sports, cooking, finance"
TEXT = "The team won the football match last night."


@pytest.fixture
def handlers(ctx) -> ClassifyHandlers:
    return ClassifyHandlers(ctx)


def test_explain_shows_both_labels_and_downloads(handlers) -> None:
    view = handlers.why.explain(TEXT, "embeddings", "minilm-l6", LABELS, "", other="Finance")
    assert view.predicted.label == "sports" and view.other is not None and view.other.label == "finance"
    assert view.predicted_html.count("class='lmw-attr'") == len(view.predicted.tokens)
    assert "football" in view.predicted_html and "Toward &quot;sports&quot;" in view.predicted_html
    assert "finance" in view.other_html
    assert [trace.name for trace in view.chart.data] == ["sports", "finance"]
    assert json.loads(view.chart.to_json())["config"]["toImageButtonOptions"]["filename"] == "why-this-label"
    page = Path(view.download).read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "football" in page
    assert "minilm-l6" in view.note and "integrated gradients" in view.note and "sum to" in view.note
    assert set(view.labels) == {"sports", "cooking", "finance"}


def test_explain_in_chinese_and_without_another_label(handlers) -> None:
    view = handlers.why.explain(TEXT, "embeddings", "minilm-l6", LABELS, "", other="sports",
                                attribution="gradient_x_input", lang="zh-CN")
    assert view.other is None and view.other_html == "" and len(view.chart.data) == 1
    assert "梯度乘输入" in view.note and "指向" in view.predicted_html


def test_api_json_and_errors(handlers) -> None:
    answer = handlers.why.api_json(TEXT, "minilm-l6", "cooking", "embeddings", LABELS)
    assert answer["label"] == "cooking" and answer["predicted_label"] == "sports"
    assert len(answer["tokens"]) == len(answer["attributions"]) and answer["baseline_log_probability"] is not None
    with pytest.raises(InputError) as info:
        handlers.why.api_json(TEXT, "smollm2-135m-instruct", "", "lm", LABELS)
    assert info.value.key == "insight.err.explain_method"


def test_batch_why_column_is_per_session(handlers) -> None:
    assert not handlers.why.why_column("s1")
    handlers.why.set_why_column("s1", True)
    assert handlers.why.why_column("s1") and not handlers.why.why_column("s2")
    spec = handlers.batch_spec("embeddings", "minilm-l6", LABELS, "", "auto", why=True)
    rows = spec.process([TEXT, "Stir the sauce and add butter."])
    assert all(WHY_COLUMN in row for row in rows)
    assert "football" in rows[0][WHY_COLUMN] and rows[0]["predicted_label"] == "sports"
    plain = handlers.batch_spec("embeddings", "minilm-l6", LABELS, "", "auto").process([TEXT])
    assert WHY_COLUMN not in plain[0]
