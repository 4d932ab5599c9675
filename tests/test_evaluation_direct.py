"""The plain evaluation function (no session, job thread or UI) gives the Evaluate tab's numbers; remote models
are refused for classification with one keyed sentence, and need the app context."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from components.evaluate_handlers import EvaluateHandlers
from pipelines.errors import InputError
from pipelines.evaluation.direct import rows_data, score_models, score_rows
from pipelines.evaluation.job import KIND
from pipelines.evaluation.spec import EvalOptions, EvalTask

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def test_score_models_gives_the_evaluate_tabs_numbers(ctx, tiny_root: Path, upload_dir: Path) -> None:
    file = shutil.copy(EXAMPLES / "sentiment.csv", upload_dir / "sentiment.csv")
    models = ["minilm-l6", str(tiny_root / "tiny-bert-cls")]
    *_, last = EvaluateHandlers(ctx).evaluate(str(file), "text", "label", models, "classification", 200, 8, 300, 3,
                                              None, None)
    tab = last[3]

    frame = pd.read_csv(EXAMPLES / "sentiment.csv")
    data = rows_data("classification", frame["text"].tolist(), frame["label"].tolist())
    result = score_models(ctx, models, data, EvalOptions(resamples=300, seed=3))
    assert result.files == [] and result.report["rows"] == 20
    assert result.public()["metrics"] == tab["metrics"]  # values and intervals, every metric and model
    assert result.public()["pairs"] == tab["pairs"]
    assert result.public()["detail"] == tab["detail"]
    # the bare model manager (e.g. a training child) gives the same numbers too
    assert score_rows(ctx.manager, models, "classification", frame["text"].tolist(), frame["label"].tolist(),
                      EvalOptions(resamples=300, seed=3))["metrics"] == tab["metrics"]


def test_rows_data_skips_empty_rows_caps_and_keeps_given_labels() -> None:
    data = rows_data(EvalTask.CLASSIFICATION, ["good", "", "bad", "fine", "meh"], ["pos", "neg", "neg", "", "neg"],
                     labels=["neg", "pos", "neutral"], max_rows=1)
    assert data.inputs == ["good"] and data.targets == ["pos"] and data.row_numbers == [1]
    assert data.labels == ["neg", "pos", "neutral"]
    assert [n.key for n in data.notes] == ["evaluate.rows_skipped", "evaluate.rows_capped"]
    lm = rows_data("lm", ["some text", " "])
    assert lm.targets is None and lm.inputs == ["some text"]
    with pytest.raises(InputError) as err:
        rows_data("generation", ["a prompt"])
    assert err.value.key == "evaluate.no_target"


def test_remote_models_are_refused_for_classification_and_without_the_app(ctx, upload_dir: Path) -> None:
    file = shutil.copy(EXAMPLES / "sentiment.csv", upload_dir / "sentiment.csv")
    with pytest.raises(InputError) as err:  # refused before any model loads or any job starts
        next(EvaluateHandlers(ctx).evaluate(str(file), "text", "label", ["minilm-l6", "remote:lcp/smol"], "auto",
                                            200, 8, 100, 0, None, None))
    assert err.value.key == "evaluate.remote_generation_only" and "远程模型" in err.value.render("zh-CN")
    assert ctx.sessions.get("api", KIND) is None
    data = rows_data("classification", ["good film", "bad film"], ["positive", "negative"])
    with pytest.raises(InputError) as err:
        score_models(ctx, ["remote:lcp/smol"], data, EvalOptions(resamples=0))
    assert err.value.key == "evaluate.remote_generation_only"
    assert "only be evaluated on generation" in str(err.value) and "Classification" in str(err.value)
    generation = rows_data("generation", ["Say hi."], ["hi"])
    with pytest.raises(InputError) as err:
        score_models(ctx.manager, ["remote:lcp/smol"], generation, EvalOptions(resamples=0))
    assert err.value.key == "evaluate.remote_needs_app"
