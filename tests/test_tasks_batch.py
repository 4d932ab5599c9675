"""CSV batch mode: metrics with a label column, Stop keeps the rows done, downloads neutralise formulas."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from components.batch_ui import BatchSpec, run_batch, stop_batch
from components.classify import label_metrics
from components.summarize import rouge_metrics
from pipelines.errors import InputError
from pipelines.tasks.batch import BatchJob
from pipelines.tasks.classify import ClassifierSpec, make_classifier


def _csv(upload_dir, rows: list[dict], name: str = "in.csv") -> str:
    path = upload_dir / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _last(gen):
    outputs = list(gen)
    return outputs[-1]


def test_batch_with_label_column_reports_accuracy_and_macro_f1(ctx, upload_dir) -> None:
    rows = [
        {"text": "The striker scored twice and the team won the league", "label": "sports"},
        {"text": "Simmer the tomato sauce and add fresh basil", "label": "cooking"},
        {"text": "Shares rallied after strong quarterly earnings", "label": "finance"},
        {"text": "The goalkeeper saved a penalty in the final minute", "label": "sports"},
        {"text": "Knead the dough and let it rise for an hour", "label": "cooking"},
        {"text": "Bond yields rose as the central bank raised interest rates", "label": "finance"},
    ]
    classifier = make_classifier(ctx.manager, ClassifierSpec("embeddings", "minilm-l6", "sports, cooking, finance"))

    def process(texts):
        return [{"predicted_label": r["label"]} for r in classifier.classify(texts)]

    spec = BatchSpec(process, batch_size=4, metrics=label_metrics, stem="classified")
    status, preview, files, metrics, figure = _last(
        run_batch(ctx, "test-metrics", _csv(upload_dir, rows), "text", "label", lambda: spec))
    assert "6 of 6 rows (done" in status
    assert list(preview["predicted_label"]) == [r["label"] for r in rows]
    assert "**Accuracy** 1.000" in metrics and "**Macro-F1** 1.000" in metrics
    assert figure is not None and list(figure.data[0].x) == ["cooking", "finance", "sports"]
    assert files[0].endswith(".csv") and files[1].endswith(".json")
    assert len(pd.read_csv(files[0])) == 6 and len(pd.read_json(files[1])) == 6


def test_rouge_metrics_compare_model_summaries_with_the_reference_column(ctx, upload_dir) -> None:
    from components.summarize import make_summarizer

    rows = [{"text": "The cat sat. The dog ran. The bird flew.", "summary": "The cat sat."},
            {"text": "Apple is in Cupertino. It makes phones.", "summary": "Apple makes phones."}]
    summarizer = make_summarizer(ctx, "extractive", "minilm-l6", 1, 0, 64)

    def process(texts):
        return [{"model_summary": r["summary"]} for r in summarizer.summarize_many(texts)]

    spec = BatchSpec(process, 8, rouge_metrics)
    _, preview, _, metrics, figure = _last(run_batch(ctx, "test-rouge", _csv(upload_dir, rows), "text", "summary",
                                                     lambda: spec))
    assert list(preview.columns) == ["text", "summary", "model_summary"]
    assert "over 2 rows" in metrics and figure is None
    assert "**Mean ROUGE-1** 1.000" not in metrics  # the model's summaries differ from the references


def test_stop_mid_batch_keeps_done_rows_downloadable(ctx, upload_dir) -> None:
    path = _csv(upload_dir, [{"text": f"row {i}"} for i in range(200)])
    started = threading.Event()

    def slow(texts):
        started.set()
        time.sleep(0.05)
        return [{"echo": x.upper()} for x in texts]

    outputs: list = []
    runner = threading.Thread(
        target=lambda: outputs.extend(run_batch(ctx, "test-stop", path, "text", None, lambda: BatchSpec(slow, 2))))
    runner.start()
    assert started.wait(30)
    time.sleep(0.3)
    status, preview, files, _, _ = stop_batch(ctx, "test-stop")
    runner.join(30)
    done = pd.read_csv(files[0])
    assert "stopped" in status
    assert 0 < len(done) < 200
    assert list(done["echo"]) == [f"ROW {i}" for i in range(len(done))]
    assert len(preview) == len(done)


def test_batch_job_reports_errors_and_keeps_rows() -> None:
    def fail_on_third(texts):
        if "c" in texts:
            raise ValueError("boom")
        return [{"v": x} for x in texts]

    job = BatchJob(["a", "b", "c", "d"], fail_on_third, batch_size=1)
    job.run()
    assert [r["v"] for r in job.results] == ["a", "b"]
    assert "boom" in str(job.error) and "failed" in str(job.status())


def test_download_neutralises_formulas(ctx, upload_dir) -> None:
    path = _csv(upload_dir, [{"text": "=1+1"}, {"text": "plain"}])
    spec = BatchSpec(lambda texts: [{"copy": x} for x in texts], 8)
    _, _, files, _, _ = _last(run_batch(ctx, "test-formula", path, "text", None, lambda: spec))
    with open(files[0], encoding="utf-8") as handle:
        raw = handle.read()
    assert "'=1+1" in raw
    assert "\n=1+1" not in raw and ",=1+1" not in raw


def test_unknown_column_is_a_clear_error(ctx, upload_dir) -> None:
    path = _csv(upload_dir, [{"text": "a"}])
    with pytest.raises(InputError, match="no column 'body'"):
        _last(run_batch(ctx, "test-col", path, "body", None, lambda: BatchSpec(lambda t: t, 1)))


def test_batch_jobs_live_in_the_context_sessions_and_end_with_the_session(ctx, upload_dir) -> None:
    from pipelines.sessions import WorkerJob
    from pipelines.tasks.batch import batch_kind

    path = _csv(upload_dir, [{"text": f"row {i}"} for i in range(3)])
    _last(run_batch(ctx, "test-sessions", path, "text", None, lambda: BatchSpec(lambda t: [{"v": x} for x in t], 2)))
    job = ctx.sessions.get("api", batch_kind("test-sessions"))  # no browser session: the API's
    assert isinstance(job, BatchJob) and isinstance(job, WorkerJob) and job.done == 3
    blocked = threading.Event()
    slow = BatchJob([f"r{i}" for i in range(50)], lambda t: blocked.wait(5) and [{"v": x} for x in t], 1).start()
    ctx.sessions.put("browser-1", batch_kind("test-sessions"), slow)
    assert ctx.sessions.end("browser-1") == 1  # the page was closed: its job is stopped and forgotten
    blocked.set()
    assert slow.wait(10) and slow.stopped and slow.done < slow.total
    assert ctx.sessions.get("browser-1", batch_kind("test-sessions")) is None


def test_files_outside_the_upload_folder_are_refused(ctx, tmp_path) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_text("text\nhello\n")
    for path in (str(outside), "/etc/passwd"):
        with pytest.raises(InputError, match="not an upload of this app"):
            _last(run_batch(ctx, "test-outside", path, "text", None, lambda: BatchSpec(lambda t: t, 1)))
