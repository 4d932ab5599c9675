"""Fix wrong rows, retrain: the corrections table, the edits, the new run's data and its before/after line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipelines.errors import InputError
from pipelines.training import corrections as fix
from pipelines.training.data import ColumnMapping, prepare
from tests.test_training import NEG, POS, run_job, sentiment_table, tiny_settings


def result_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "text": ["good", "bad", "fine", "awful", "great"],
        "label": ["pos", "neg", "pos", "neg", "pos"],
        "predicted_label": ["pos", "pos", "pos", "neg", "neg"],
        "score": [0.99, 0.7, 0.55, 0.95, 0.9],
    })


def test_candidates_list_wrong_rows_first_then_low_confidence() -> None:
    rows = fix.candidates(result_frame(), "text", "label")
    assert [r[0] for r in rows] == [2, 5, 3]  # wrong (least confident first), then the 0.55 row
    assert rows[0] == [2, "bad", "neg", "pos", 0.7, "neg", False]
    assert fix.result_columns(list(result_frame().columns), "", "") == ("text", "label")
    with pytest.raises(InputError):
        fix.result_columns(["text", "label"], "text", "label")  # not a batch result
    with pytest.raises(InputError):
        fix.result_columns(["text", "predicted_label", "score"], "text", "")  # no label column


def test_edits_from_the_table_or_json_relabel_and_exclude() -> None:
    frame = result_frame()
    table = pd.DataFrame([[2, "bad", "neg", "pos", 0.7, "pos", False], [5, "great", "pos", "neg", 0.9, "pos", True],
                          [3, "fine", "pos", "pos", 0.55, "pos", "false"]])
    for edits in (table, table.values.tolist(), {"data": table.values.tolist()},
                  json.dumps([{"row": 2, "label": "pos"}, {"row": 5, "exclude": True}])):
        corrected = fix.corrected_rows(frame, "text", "label", fix.parse_edits(edits))
        assert corrected.counts == {"corrected_labels": 1, "excluded_rows": 1}
        assert corrected.texts == ["good", "bad", "fine", "awful"] and corrected.labels == ["pos", "pos", "pos", "neg"]
        assert corrected.rows == [0, 1, 2, 3]
    with pytest.raises(InputError):
        fix.corrected_rows(frame, "text", "label", fix.parse_edits([{"row": 9, "label": "x"}]))
    with pytest.raises(InputError):
        fix.parse_edits("not json")


def test_training_data_is_the_source_runs_rows_plus_the_corrections() -> None:
    source = prepare(sentiment_table(4), "classification", ColumnMapping("text", "label"))
    frame = pd.DataFrame({"text": [POS[0], NEG[0], "new row"], "label": ["pos", "neg", "neg"],
                          "predicted_label": ["neg", "neg", "pos"], "score": [0.6, 0.9, 0.5]})
    edits = [{"row": 1, "label": "neg"}, {"row": 2, "exclude": True}]
    corrected = fix.corrected_rows(frame, "text", "label", fix.parse_edits(edits))
    out = fix.training_frame(corrected, source)
    labels = dict(zip(out["text"], out["label"], strict=True))
    assert labels[POS[0]] == "neg" and NEG[0] not in labels and labels["new row"] == "neg"
    assert len(out) == 8 - 1 + 1  # the source's 8 rows, one excluded, one new


def test_three_corrected_labels_retrain_and_show_the_metric_against_the_previous_run(ctx, tiny_root,
                                                                                     upload_dir) -> None:
    from components.classify_corrections_handlers import CorrectionsHandlers
    from pipelines.tasks.classify import ClassifierSpec, make_classifier

    data = prepare(sentiment_table(10), "classification", ColumnMapping("text", "label"))
    source = run_job(ctx, data, tiny_settings(learning_rate=0.01), str(tiny_root / "tiny-bert"))
    assert source.snapshot().status == "complete", source.snapshot().error
    previous = ctx.runs.get(source.run_id).metrics["accuracy"]

    texts = [*POS[10:16], *NEG[10:16]]
    gold = ["pos"] * 6 + ["neg"] * 6
    classifier = make_classifier(ctx.manager, ClassifierSpec("finetuned", f"run:{source.run_id}"))
    out = classifier.classify(texts)
    result = pd.DataFrame({"text": texts, "label": gold, "predicted_label": [r["label"] for r in out],
                           "score": [round(r["scores"][r["label"]], 4) for r in out]})
    path = upload_dir / "classified.csv"
    result.to_csv(path, index=False)

    handlers = CorrectionsHandlers(ctx)
    view = handlers.table([str(path)], "text", "label", "en", threshold=1.01)  # every row listed
    assert view is not None and len(view.rows) == 12 and view.headers[5] == "new label"
    assert "batch accuracy" in view.note
    edited = [list(r) for r in view.rows]
    for row in edited[:3]:  # three labels changed to the other class
        row[5] = "neg" if row[2] == "pos" else "pos"
    table = pd.DataFrame(edited, columns=view.headers)

    steps = list(handlers.retrain(view.file, table, f"run:{source.run_id}", "text", "label", "quick", "s1", "en"))
    run_id, status, files = steps[-1]
    assert run_id and run_id != source.run_id
    info = ctx.runs.get(run_id)
    meta = json.loads((info.path / "run.json").read_text())
    assert meta["data"]["counts"]["corrected_labels"] == 3 and meta["data"]["counts"]["excluded_rows"] == 0
    assert any("corrected labels 3, excluded rows 0, rows from the batch's fine-tuned run 20" in note
               for note in meta["data"]["notes"])
    assert meta["settings"]["learning_rate"] == 0.01 and meta["base_model"] == str(tiny_root / "tiny-bert")
    assert meta["data"]["rows_kept"] == 20 + 12  # the source run's rows plus the batch rows
    assert "**Before:**" in status and "**After:**" in status and f"run:{run_id}" in status
    assert f"the previous run's {previous:.3f}" in status and "Corrected labels: 3; excluded rows: 0" in status
    assert f"validation accuracy {info.metrics['accuracy']:.3f}" in status
    corrected = pd.read_csv(files[0])
    changed = sum(a != b for a, b in zip(corrected["label"], result["label"], strict=True))
    assert changed == 3 and "predicted_label" not in corrected.columns


def test_evaluate_predictions_become_a_corrections_table(ctx, upload_dir) -> None:
    from components.classify_corrections_handlers import CorrectionsHandlers

    path = upload_dir / "predictions.csv"
    pd.DataFrame({"row": [1, 2, 3], "input": ["good", "bad", "fine"], "reference": ["pos", "neg", "pos"],
                  "run:abc | output": ["pos", "pos", "neg"], "run:abc | correct": [1.0, 0.0, 0.0],
                  "minilm-l6 | output": ["pos", "neg", "pos"], "minilm-l6 | correct": [1.0, 1.0, 1.0]}).to_csv(
        path, index=False)
    view = CorrectionsHandlers(ctx).table([str(path), str(upload_dir / "evaluation.json")], None, None, "zh-CN")
    assert view is not None and view.model == "run:abc" and (view.text_column, view.label_column) == ("text", "label")
    assert [r[:4] for r in view.rows] == [[2, "bad", "neg", "pos"], [3, "fine", "pos", "neg"]]
    assert view.headers[5] == "新标签" and "准确率" in view.note and "run:abc" in view.note
    generation = upload_dir / "generation.csv"
    pd.DataFrame({"row": [1], "input": ["q"], "reference": ["a"], "m | output": ["b"], "m | rougeL": [0.0]}).to_csv(
        generation, index=False)
    assert CorrectionsHandlers(ctx).table([str(generation)], None, None) is None  # not a classification run


def test_before_after_line_names_the_previous_run_only_when_there_was_one() -> None:
    before = {"accuracy": 0.5, "count": 12}
    line = fix.comparison(before, {"accuracy": 0.75, "count": 11}, "run:new", 0.8, 0.6).render()
    assert "accuracy 0.500 on 12 batch rows" in line and "accuracy 0.750 on the 11" in line
    assert "validation accuracy 0.800, the previous run's 0.600" in line
    fresh = fix.comparison(before, {}, "run:new", 0.8).render()
    assert "previous" not in fresh and "accuracy - on the 0" in fresh
