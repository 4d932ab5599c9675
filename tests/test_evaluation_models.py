"""The Evaluate tab's pipeline with real (tiny and embedded) models: perplexity by hand, paired comparisons,
Stop, the row cap, the downloads and keyed errors."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest

from components.evaluate_handlers import EvaluateHandlers, changed_frame, summary_frame
from pipelines.errors import InputError
from pipelines.evaluation.job import KIND, EvaluationJob
from pipelines.evaluation.lm_scoring import CausalScorer, Segment
from pipelines.evaluation.scoring import score
from pipelines.evaluation.spec import EvalData, EvalOptions, EvalTask

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def run(handlers: EvaluateHandlers, file: Path, models: list[str], task: str = "auto", input_column: str = "",
        target_column: str = "", max_rows: int = 200, resamples: int = 200) -> tuple:
    """The handler's last output (what the UI and the API show when the evaluation ends)."""
    *_, last = handlers.evaluate(str(file), input_column, target_column, models, task, max_rows, 8, resamples, 0,
                                 None, None)
    return last


def test_perplexity_of_a_five_token_text_by_hand(ctx, tiny_root: Path) -> None:
    import torch

    loaded = ctx.manager.load(str(tiny_root / "tiny-gpt2"), "causal-lm", dtype="float32")
    scorer = CausalScorer(loaded)
    ids = loaded.tokenizer("one two three four five", add_special_tokens=False)["input_ids"]
    assert len(ids) == 5
    with torch.inference_mode():
        logits = loaded.model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    nll = -sum(float(logp[i - 1, ids[i]]) for i in range(1, 5))  # tokens 2..5 given the ones before
    got = scorer.text_nll(["one two three four five"])[0]
    assert got.tokens == 4
    assert got.total == pytest.approx(nll, rel=1e-4)
    assert got.perplexity == pytest.approx(math.exp(nll / 4), rel=1e-4)
    assert got.bits_per_token == pytest.approx(nll / 4 / math.log(2), rel=1e-4)
    # batched with a longer text (right padding) gives the same number
    both = scorer.nll_segments([Segment(tuple(ids)), Segment(tuple(ids * 3))])
    assert both[0].total == pytest.approx(nll, rel=1e-4)
    # sliding windows of 3 tokens score the same 4 tokens, each with less context
    scorer.context = 3
    windowed = scorer.text_nll(["one two three four five"], stride=1)[0]
    assert windowed.tokens == 4


def test_classification_of_two_models_with_intervals_and_downloads(ctx, tiny_root: Path, upload_dir: Path) -> None:
    from sklearn.metrics import accuracy_score

    file = shutil.copy(EXAMPLES / "sentiment.csv", upload_dir / "sentiment.csv")
    status, summary, pairs, report, changed, files, result = run(
        EvaluateHandlers(ctx), file, ["minilm-l6", str(tiny_root / "tiny-bert-cls")], task="classification")
    assert report["task"] == "classification" and report["rows"] == 20
    for model in report["models"]:
        acc = report["metrics"][model]["accuracy"]
        assert acc["low"] <= acc["value"] <= acc["high"]
    csv_path, json_path = files
    with open(csv_path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20
    truth = [r["reference"] for r in rows]
    predicted = [r["minilm-l6 | output"] for r in rows]
    accuracy = report["metrics"]["minilm-l6"]["accuracy"]["value"]
    assert accuracy == pytest.approx(accuracy_score(truth, predicted), abs=1e-4)
    assert report["metrics"]["minilm-l6"]["accuracy"]["value"] > 0.6  # zero-shot embeddings do know sentiment
    saved = json.loads(Path(json_path).read_text(encoding="utf-8"))
    assert len(saved["predictions"]) == 20 and "pairs" in saved["report"]
    assert len(report["pairs"]) == 1 and 0 < report["pairs"][0]["p_values"]["accuracy"] <= 1
    assert list(summary.columns)[0] == "Model" and len(summary) == 2
    assert "20 of 20" in status and "200 paired bootstrap resamples" in status
    assert "that never occur in the file (negative, positive)" in status  # the tiny classifier says neg/pos
    assert len(changed) == sum(r["minilm-l6 | correct"] != r[f"{tiny_root / 'tiny-bert-cls'} | correct"] for r in rows)


def test_two_identical_models_give_p_one_and_no_changed_rows(ctx, tiny_root: Path, upload_dir: Path) -> None:
    file = upload_dir / "lm.csv"
    file.write_text("text\n" + "\n".join(f"sentence number {i} is here." for i in range(12)) + "\n", encoding="utf-8")
    model = str(tiny_root / "tiny-gpt2")
    status, summary, pairs, report, changed, files, result = run(EvaluateHandlers(ctx), file, [model, model + "/"])
    assert report["task"] == "lm" and report["rows"] == 12
    p_values = report["pairs"][0]["p_values"]
    assert p_values["perplexity"] == pytest.approx(1.0) and p_values["bits_per_token"] == pytest.approx(1.0)
    assert changed.empty
    ppl = report["metrics"][model]["perplexity"]
    assert ppl["low"] <= ppl["value"] <= ppl["high"]
    assert ppl["value"] == pytest.approx(2 ** report["metrics"][model]["bits_per_token"]["value"], rel=1e-3)


def test_generation_metrics_and_the_row_cap_note(ctx, tiny_root: Path, upload_dir: Path) -> None:
    file = shutil.copy(EXAMPLES / "instructions.csv", upload_dir / "instructions.csv")
    status, summary, pairs, report, changed, files, result = run(
        EvaluateHandlers(ctx), file, [str(tiny_root / "tiny-llama")], max_rows=5)
    assert report["task"] == "generation" and report["rows"] == 5
    metrics = report["metrics"][str(tiny_root / "tiny-llama")]
    assert set(metrics) >= {"rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "token_f1", "mean_length",
                            "reference_perplexity"}
    assert metrics["reference_perplexity"]["value"] > 1
    assert "Scored the first 5 of 16 rows" in status
    assert report["pairs"] == []


def test_stop_keeps_the_chunks_every_model_scored() -> None:
    data = EvalData(EvalTask.CLASSIFICATION, "text", "label", [f"t{i}" for i in range(200)],
                    ["a" if i % 2 else "b" for i in range(200)], list(range(2, 202)), ["a", "b"])

    class Fake:
        def __init__(self, job_ref: list) -> None:
            self.job_ref, self.calls = job_ref, 0

        def predict(self, inputs: list[str], targets: list[str] | None) -> list[dict]:
            self.calls += 1
            if self.calls == 2:
                self.job_ref[0].stop()  # Stop pressed while the second chunk is being scored
            return [{"prediction": "a"} for _ in inputs]

    ref: list = []
    job = EvaluationJob(data, ["m1", "m2"], lambda _model: Fake(ref))
    ref.append(job)
    job.run()
    assert job.done == 64 and [len(r) for r in job.results] == [64, 64]  # the second chunk is dropped for both
    assert job.state == "stopped"
    report = score(data, ["m1", "m2"], job.results, EvalOptions(resamples=50))
    assert report["rows"] == 64 and report["metrics"]["m1"]["accuracy"]["value"] == pytest.approx(0.5)


def test_stop_handler_without_a_job_and_keyed_errors(ctx, tiny_root: Path, upload_dir: Path) -> None:
    handlers = EvaluateHandlers(ctx)
    assert handlers.stop(None)[0] == "No evaluation is running."
    assert ctx.sessions.get("api", KIND) is None
    file = shutil.copy(EXAMPLES / "instructions.csv", upload_dir / "instructions.csv")
    with pytest.raises(InputError) as err:
        run(handlers, file, [])
    assert err.value.key == "evaluate.model_count"
    with pytest.raises(InputError) as err:
        run(handlers, file, ["minilm-l6"], task="generation")
    assert err.value.key == "evaluate.needs_causal_lm"
    assert "生成" in err.value.render("zh-CN") and "encoder" not in err.value.render("zh-CN")
    assert "Encoder (embeddings)" in str(err.value)


def test_changed_rows_headers_are_translated() -> None:
    data = EvalData(EvalTask.CLASSIFICATION, "text", "label", ["x", "y"], ["a", "b"], [2, 3], ["a", "b"])
    rows = [[{"prediction": "a"}, {"prediction": "a"}], [{"prediction": "a"}, {"prediction": "b"}]]
    from pipelines.evaluation.outputs import prediction_rows
    from pipelines.evaluation.runner import EvaluationResult

    report = score(data, ["m1", "m2"], rows, EvalOptions(resamples=20))
    result = EvaluationResult(report, prediction_rows(data, ["m1", "m2"], rows, report), [])
    frame = changed_frame(result, "m1", "m2", "zh-CN")
    assert len(frame) == 1 and frame.iloc[0]["变化"] == 1.0  # wrong -> right
    assert "m2 | 输出" in frame.columns and "参考答案" in frame.columns
    assert "准确率" in summary_frame(result, "zh-CN").columns


def test_stop_button_reports_the_rows_already_scored(ctx, tiny_root: Path, upload_dir: Path) -> None:
    file = upload_dir / "long.csv"
    file.write_text("text\n" + "\n".join(f"row {i} says something short." for i in range(3000)) + "\n",
                    encoding="utf-8")
    handlers = EvaluateHandlers(ctx)
    running = handlers.evaluate(str(file), "", "", [str(tiny_root / "tiny-gpt2")], "lm", 3000, 8, 100, 0, None, None)
    first = next(running)  # the job is running (loading or scoring)
    assert "of 3000 rows" in first[0]
    status, summary, pairs, report, changed, files, result = handlers.stop(None)
    assert "stopped" in status
    assert report["rows"] < 3000 and report["rows"] % 16 == 0  # whole chunks only
    if report["rows"]:
        assert len(result.records) == report["rows"] and len(files) == 2
    running.close()
