"""The run report: HTML opened in Chromium from a file:// URL (offline, the loss curve drawn) and the Markdown
model card's content, including the optional before/after and baseline files read defensively."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipelines.evaluation.model_card import run_report_markdown, write_run_markdown
from pipelines.evaluation.run_report import record_evaluation, run_report_html, write_run_report
from pipelines.training.enums import RunStatus
from pipelines.training.store import RunStore
from pipelines.training.writer import RunWriter

TRAIN_LOSS = [0.71, 0.66, 0.58, 0.49, 0.41, 0.35, 0.31, 0.28]
VAL_LOSS = [(0, 0.69), (4, 0.52), (8, 0.33)]
BEFORE_AFTER = {
    "task": "classification", "rows": 8, "models": ["minilm-l6", "run:demo"],
    "metrics": {"minilm-l6": {"accuracy": {"value": 0.625, "low": 0.25, "high": 0.875},
                              "macro_f1": {"value": 0.6, "low": 0.2, "high": 0.9}},
                "run:demo": {"accuracy": {"value": 0.875, "low": 0.625, "high": 1.0},
                             "macro_f1": {"value": 0.87, "low": 0.6, "high": 1.0}}},
    "pairs": [{"a": "minilm-l6", "b": "run:demo", "p_values": {"accuracy": 0.3117, "macro_f1": 0.29}}],
    "examples": [{"input": "The plot | twist was dull\nand slow", "reference": "negative", "before": "positive",
                  "after": "negative"}],
}
BASELINE = {"method": "logistic-regression", "accuracy": 0.75, "macro_f1": 0.7333, "seconds": 0.42}


def make_run(root: Path, name: str = "demo reviews") -> str:
    """A complete classifier run written by the run store's writer: settings, data, a log with loss values."""
    writer = RunWriter(root, "20260101-120000-demo-ab12", {
        "task": "classification", "base_model": "minilm-l6", "name": name, "labels": ["negative", "positive"],
        "settings": {"learning_rate": 0.005, "epochs": 2.0, "lora_r": 8},
        "data": {"rows_total": 40, "rows_kept": 40, "label_counts": {"negative": 20, "positive": 20}}})
    for step, loss in enumerate(TRAIN_LOSS, start=1):
        writer.log({"event": "step", "step": step, "loss": loss})
    for step, loss in VAL_LOSS:
        writer.log({"event": "log", "key": "training.log.eval_cls", "step": step, "loss": f"{loss:.4f}"})
    per_class = [{"label": "negative", "precision": 1.0, "recall": 0.75, "f1": 0.8571, "support": 4},
                 {"label": "positive", "precision": 0.8, "recall": 1.0, "f1": 0.8889, "support": 4}]
    writer.finish(RunStatus.COMPLETE, metrics={"val_loss": 0.33, "accuracy": 0.875, "macro_f1": 0.873,
                                               "per_class": per_class, "matrix": [[3, 1], [0, 4]]},
                  device="cpu", precision="float32")
    return writer.run_id


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs")


def test_markdown_model_card_has_every_section_and_the_optional_files(store: RunStore) -> None:
    run_id = make_run(store.root)
    plain = run_report_markdown(store, run_id)
    assert plain.startswith("# Fine-tuning run: demo reviews\n")
    for heading in ("## Settings", "## Data", "## Loss curves", "## Validation metrics", "### Per-class scores",
                    "## Evaluations", "## Environment"):
        assert f"\n{heading}\n" in plain
    assert "| learning_rate | 0.005 |" in plain and "| rows_kept | 40 |" in plain
    assert "Train loss 0.71 at step 1, 0.28 at step 8 (8 logged steps" in plain
    assert "| Step | Validation loss |" in plain and "| 8 | 0.33 |" in plain
    assert "| Accuracy | 0.875 |" in plain and "| negative | 1.0 | 0.75 | 0.8571 | 4 |" in plain
    assert "| device | cpu |" in plain and "| precision | float32 |" in plain and "| transformers |" in plain
    assert "Before and after" not in plain and "Baseline" not in plain  # no files: no sections

    folder = store.root / run_id
    (folder / "before_after.json").write_text(json.dumps(BEFORE_AFTER), encoding="utf-8")
    (folder / "baseline.json").write_text(json.dumps(BASELINE), encoding="utf-8")
    record_evaluation(store, {"task": "classification", "rows": 20, "models": [f"run:{run_id}"],
                              "metrics": {f"run:{run_id}": {"accuracy": {"value": 0.9, "low": 0.75, "high": 1.0}}}})
    card = write_run_markdown(store, run_id, folder=store.root.parent)
    assert card.name == f"{run_id}-report.md"
    text = card.read_text(encoding="utf-8")
    assert "## Before and after fine-tuning" in text
    assert "the same 8 validation rows" in text
    assert "| Metric | minilm-l6 | run:demo | p-value |" in text
    assert "| Accuracy | 0.625 [0.25, 0.875] | 0.875 [0.625, 1.0] | 0.3117 |" in text
    assert "| Input | Reference | Before | After |" in text
    assert "| The plot \\| twist was dull<br>and slow | negative | positive | negative |" in text  # cell kept whole
    assert "accuracy 0.75 and macro-F1 0.7333" in text and "| method | logistic-regression |" in text
    assert "classification, 20 rows" in text and "| Accuracy | 0.9 [0.75, 1.0] |" in text
    # every table row has as many cells as its header
    for table in re.findall(r"(?:^\|.*\|\n?)+", text, flags=re.M):
        lines = [line for line in table.strip().split("\n") if not line.startswith("|---")]
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) == 1, table

    zh = run_report_markdown(store, run_id, "zh-CN")
    assert zh.startswith("# 微调运行: demo reviews\n")
    assert "## 微调前后对比" in zh and "| 指标 | minilm-l6 | run:demo | p 值 |" in zh and "## 运行环境" in zh


def test_unreadable_or_unknown_before_after_files_leave_the_section_out(store: RunStore) -> None:
    run_id = make_run(store.root)
    folder = store.root / run_id
    for content in ("{not json", json.dumps([1, 2]), json.dumps({"before": {"note": "no numbers"}})):
        (folder / "before_after.json").write_text(content, encoding="utf-8")
        (folder / "baseline.json").write_text(content, encoding="utf-8")
        text = run_report_markdown(store, run_id)
        assert "Before and after" not in text and "## Baseline" not in text
        assert "## Environment" in text
    # the other documented shape: {"before": metrics, "after": {"model", "metrics"}}
    (folder / "before_after.json").write_text(json.dumps({
        "rows": 5, "before": {"model": "minilm-l6", "metrics": {"accuracy": 0.4}},
        "after": {"accuracy": {"value": 0.8, "low": 0.6, "high": 1.0}}}), encoding="utf-8")
    text = run_report_markdown(store, run_id)
    assert "| Metric | minilm-l6 | after |" in text and "| Accuracy | 0.4 | 0.8 [0.6, 1.0] |" in text
    page = run_report_html(store, run_id)
    assert "<h2>Before and after fine-tuning</h2>" in page and "0.8 [0.6, 1.0]" in page


def test_html_report_opens_offline_in_chromium_and_draws_the_loss_curve(store: RunStore, tmp_path: Path,
                                                                         browser) -> None:
    run_id = make_run(store.root)
    folder = store.root / run_id
    (folder / "before_after.json").write_text(json.dumps(BEFORE_AFTER), encoding="utf-8")
    (folder / "baseline.json").write_text(json.dumps(BASELINE), encoding="utf-8")
    path = write_run_report(store, run_id, "en", tmp_path)
    assert not re.search(r"<script[^>]*\bsrc=", path.read_text(encoding="utf-8"))

    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    seen, foreign, errors = [], [], []

    def route(r) -> None:
        seen.append(r.request.url)
        if r.request.url.startswith(("file://", "data:", "blob:")):
            r.continue_()
        else:
            foreign.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(path.as_uri(), wait_until="load")
        page.locator("#loss-curve svg.main-svg").first.wait_for(timeout=30_000)
        traces = page.locator("#loss-curve .scatterlayer .trace")
        assert traces.count() == 2  # train and validation loss
        lines = page.locator("#loss-curve .scatterlayer .trace path.js-line")
        assert lines.count() == 2 and all(len(lines.nth(i).get_attribute("d") or "") > 10 for i in range(2))
        legend = [item.text_content() for item in page.locator("#loss-curve .legendtext").all()]  # svg text
        assert legend == ["train loss", "validation loss"]
        assert page.locator("h1").inner_text() == "Fine-tuning run: demo reviews"
        assert page.get_by_role("heading", name="Before and after fine-tuning").is_visible()
        assert page.get_by_role("cell", name="0.875 [0.625, 1.0]").is_visible()
        assert page.get_by_text("accuracy 0.75 and macro-F1 0.7333").is_visible()
    finally:
        context.close()
    assert seen and seen[0].startswith("file://")
    assert not foreign, f"requests to other hosts: {foreign}"
    assert not errors, f"page errors: {errors}"


def test_the_training_sides_before_after_shape_gives_examples_from_the_run_data(store: RunStore) -> None:
    """``pipelines/training/before_after.py`` writes outputs per row and row indices into ``data.json``."""
    run_id = make_run(store.root)
    folder = store.root / run_id
    (folder / "data.json").write_text(json.dumps({"task": "classification", "labels": ["negative", "positive"],
                                                  "examples": [{"text": f"review {i}", "label": i % 2}
                                                               for i in range(6)]}), encoding="utf-8")
    (folder / "before_after.json").write_text(json.dumps({
        "version": 1, "task": "classification", "rows": 3, "row_indices": [1, 2, 4], "labels": ["negative", "positive"],
        "before": {"model": "minilm-l6", "method": "encoder", "metrics": {"accuracy": {"value": 0.3333}},
                   "outputs": [{"prediction": "positive"}, {"prediction": "positive"}, {"prediction": "positive"}]},
        "after": {"model": f"run:{run_id}", "method": "seq-cls", "metrics": {"accuracy": {"value": 1.0}},
                  "outputs": [{"prediction": "positive"}, {"prediction": "negative"}, {"prediction": "negative"}]},
        "p_values": {"accuracy": 0.25}}), encoding="utf-8")
    text = run_report_markdown(store, run_id)
    assert f"| Metric | minilm-l6 | run:{run_id} | p-value |" in text and "| Accuracy | 0.3333 | 1.0 | 0.25 |" in text
    examples = text[text.index("### Examples"):text.index("## Evaluations")]
    assert examples.splitlines()[4:7] == ["| review 2 | negative | positive | negative |",  # changed rows first
                                          "| review 4 | negative | positive | negative |",
                                          "| review 1 | positive | positive | positive |"]


def test_fine_tune_tab_offers_the_html_report_and_the_markdown_card(ctx) -> None:
    """The Fine-tune runs panel's two downloads: the HTML report and the same report as a Markdown model card."""
    from components.finetune_handlers import FinetuneHandlers

    run_id = make_run(ctx.runs.root)
    handlers = FinetuneHandlers(ctx)
    html, card = Path(handlers.run_report(run_id)), Path(handlers.run_card(run_id, "zh-CN"))
    assert html.suffix == ".html" and "<html" in html.read_text(encoding="utf-8").lower()
    assert card.suffix == ".md" and card.read_text(encoding="utf-8").startswith("# ")
    assert card.read_text(encoding="utf-8") != run_report_markdown(ctx.runs, run_id, "en")  # in the asked language
