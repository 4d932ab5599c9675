"""Defaults that learn (issue 19) and before/after a fine-tune (issue 15): the step budget scaled to the data, the
classification head trained fully with its own learning rate, the frozen-embedding baseline against scikit-learn,
``before_after.json`` written by a real launched run with the Evaluate tab's numbers, the default preset on the
support-intents set reported against the baseline, and the results panel's texts."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from components.finetune_results import FinetuneResultsHandlers
from pipelines.errors import InputError
from pipelines.tables import Table, read_table
from pipelines.training.baseline import TIE, baseline_scores, read_baseline, verdict
from pipelines.training.before_after import read_before_after
from pipelines.training.data import ColumnMapping, prepare, split
from pipelines.training.defaults import eval_interval, step_budget, steps_per_epoch
from pipelines.training.settings import PRESET_NAMES, TrainSettings, preset

# 420 support messages, 4 intents (written by tests/make_support_intents.py)
SUPPORT = Path(__file__).resolve().parent.parent / "assets" / "examples" / "support_intents.csv"


def support_intents(per_label: int | None = None):
    """The 420 support messages (4 intents), or the first ``per_label`` of each intent."""
    frame = read_table(SUPPORT).frame
    if per_label:
        frame = frame.groupby("label", sort=False).head(per_label).reset_index(drop=True)
    return prepare(Table(frame, "utf-8", ","), "classification", ColumnMapping("text", "label"))


def sentiment(n: int):
    from tests.test_training import NEG, POS

    rows = [{"text": t, "label": "pos"} for t in POS[:n]] + [{"text": t, "label": "neg"} for t in NEG[:n]]
    return prepare(Table(pd.DataFrame(rows), "utf-8", ","), "classification", ColumnMapping("text", "label"))


def launched(ctx, data, settings: TrainSettings, base: str, name: str):
    """A run trained by the real launched child (one CPU process); returns the finished run."""
    from pipelines.training.hardware import HardwareSettings
    from pipelines.training.job import TrainingJob

    job = TrainingJob(ctx.config, ctx.training_slots, data, settings, base, name=name, num_threads=2,
                      hardware=HardwareSettings(device="cpu", processes=1)).start()
    assert job.wait(timeout=1500)
    state = job.snapshot()
    assert state.status == "complete", state.log_text()
    return ctx.runs.get(job.run_id)


def log_keys(folder: Path) -> list[str]:
    lines = (folder / "log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line).get("key", "") for line in lines if line.strip()]


# ---- the step budget -------------------------------------------------------------------------------------
def test_presets_train_a_step_budget_scaled_to_the_data() -> None:
    quick = preset("quick")
    assert quick.epochs == 0  # no fixed epoch count: the budget decides, early stopping ends sooner
    per_epoch = steps_per_epoch(336, quick)
    small = step_budget(336, quick)
    assert small == math.ceil(quick.budget_examples / quick.batch_size) and small >= 5 * per_epoch
    assert step_budget(200_000, quick) == quick.max_steps  # large data: capped
    balanced = preset("balanced")
    assert step_budget(4_000, balanced) == balanced.min_epochs * steps_per_epoch(4_000, balanced)  # two passes
    assert step_budget(336, replace(quick, epochs=2)) == 2 * per_epoch  # a fixed epoch count still works
    shown = [step_budget(5_000, p) * p.batch_size * p.grad_accum for p in map(preset, PRESET_NAMES)]
    assert shown == sorted(shown) and len(set(shown)) == 3  # rows shown grow from quick to thorough
    assert 1 < eval_interval(small, per_epoch, quick) <= per_epoch  # about a dozen evaluations for early stopping
    assert all(p.patience > 0 for p in map(preset, PRESET_NAMES))
    for name in PRESET_NAMES:
        cls, lm = preset(name), preset(name, "causal-lm")
        assert cls.head_learning_rate > cls.learning_rate and lm.head_learning_rate == 0


@pytest.mark.parametrize(("field", "value"), [("patience", -1), ("max_steps", 0), ("head_learning_rate", 1.0),
                                              ("epochs", -1), ("budget_examples", 0)])
def test_budget_settings_are_checked(field: str, value: float) -> None:
    with pytest.raises(InputError) as err:
        TrainSettings.from_dict({field: value})
    assert err.value.key.startswith("training.setting.")


def test_the_head_is_trained_fully_with_its_own_learning_rate(tiny_root) -> None:
    from pipelines.training.trainer import LoraTrainer

    s = TrainSettings.from_dict({"batch_size": 4, "max_length": 16}, base=preset("quick"))
    trainer = LoraTrainer(sentiment(6), s, str(tiny_root / "tiny-bert"))
    trainer.setup()
    groups = {g["name"]: g for g in trainer.param_groups}
    assert groups["head"]["lr"] == s.head_learning_rate > groups["lora"]["lr"] == s.learning_rate
    head = [n for n, p in trainer.model.named_parameters() if p.requires_grad and "modules_to_save" in n]
    assert any(".classifier." in n for n in head) and any(".pooler." in n for n in head)
    assert all("lora_" in n for n, p in trainer.model.named_parameters()
               if p.requires_grad and "modules_to_save" not in n)
    trainable = {id(p) for p in trainer.model.parameters() if p.requires_grad}
    grouped = [id(p) for g in trainer.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(trainable)  # every trainable parameter in exactly one group
    assert set(trainer.model.peft_config["default"].modules_to_save) >= {"classifier", "pooler"}


# ---- the baseline ----------------------------------------------------------------------------------------
def test_the_baseline_equals_scikit_learn_on_independently_computed_embeddings(config) -> None:
    import numpy as np
    import torch
    import transformers
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from pipelines.models.manager import ModelManager
    from pipelines.tasks.embeddings import EmbeddingTask
    from pipelines.training.job import base_location

    data = support_intents(per_label=25)
    train_idx, val_idx = split(data, 0.2, 42)
    train, val = [data.examples[i] for i in train_idx], [data.examples[i] for i in val_idx]
    encoder = EmbeddingTask(ModelManager(config).load("minilm-l6", "encoder"), max_length=64)
    result = baseline_scores(encoder, train, val, data.labels, seed=0)

    location = base_location("minilm-l6", config)
    tokenizer = transformers.AutoTokenizer.from_pretrained(location)
    model = transformers.AutoModel.from_pretrained(location).eval()

    def embed(rows: list[dict]) -> np.ndarray:
        batch = tokenizer([r["text"] for r in rows], padding=True, truncation=True, max_length=64,
                          return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    clf = LogisticRegression(max_iter=1000, random_state=0).fit(embed(train), [r["label"] for r in train])
    predicted = clf.predict(embed(val))
    gold = [r["label"] for r in val]
    assert result["accuracy"] == pytest.approx(accuracy_score(gold, predicted), abs=1e-4)
    assert result["macro_f1"] == pytest.approx(f1_score(gold, predicted, average="macro"), abs=1e-4)
    assert (result["train_rows"], result["val_rows"]) == (len(train), len(val))
    assert result["fit_seconds"] >= 0 and result["seconds"] >= result["fit_seconds"]


def test_the_verdict_says_plainly_whether_lora_beat_the_baseline() -> None:
    base = {"accuracy": 0.9, "macro_f1": 0.89, "seconds": 1.5}
    assert verdict(base, {"accuracy": 0.95, "macro_f1": 0.94}).key == "finetune_results.baseline_beaten"
    assert verdict(base, {"accuracy": 0.9 + TIE / 2, "macro_f1": 0.9}).key == "finetune_results.baseline_tied"
    worse = verdict(base, {"accuracy": 0.85, "macro_f1": 0.84})
    assert worse.key == "finetune_results.baseline_not_beaten"
    assert "0.850" in str(worse) and "0.900" in str(worse) and "did not beat" in str(worse)
    assert "没有胜过" in worse.render("zh-CN")
    assert verdict(None, {"accuracy": 1.0}) is None and verdict(base, {}) is None


# ---- before and after, through a real launched run -------------------------------------------------------
def test_a_launched_run_writes_before_and_after_with_the_evaluate_tabs_numbers(ctx, tiny_root) -> None:
    from pipelines.evaluation.direct import rows_data, score_models
    from pipelines.evaluation.spec import EvalOptions

    data = sentiment(12)
    s = TrainSettings.from_dict({"epochs": 2, "batch_size": 4, "max_length": 16, "patience": 0},
                                base=preset("quick"))
    base = str(tiny_root / "tiny-bert")
    run = launched(ctx, data, s, base, "before-after")
    record = read_before_after(run.path)
    assert record is not None and record["task"] == "classification" and record["labels"] == data.labels
    assert record["before"]["model"] == base and record["before"]["method"] == "encoder"  # zero-shot embeddings
    assert record["after"]["model"] == run.reference and record["after"]["method"] == "seq-cls"
    indices = record["row_indices"]
    assert indices == split(data, s.val_split, s.seed, s.max_val_rows)[1] and record["rows"] == len(indices)
    for side in ("before", "after"):
        metrics = record[side]["metrics"]
        assert set(metrics) >= {"accuracy", "macro_f1"} and len(record[side]["outputs"]) == len(indices)
        assert metrics["accuracy"]["low"] <= metrics["accuracy"]["value"] <= metrics["accuracy"]["high"]
    assert set(record["p_values"]) >= {"accuracy", "macro_f1"}
    keys = log_keys(run.path)
    assert {"finetune_results.log.baseline", "finetune_results.log.before", "finetune_results.log.after"} <= set(keys)

    baseline = read_baseline(run.path)
    assert baseline is not None and baseline["val_rows"] == len(indices) and 0 <= baseline["accuracy"] <= 1

    texts = [data.examples[i]["text"] for i in indices]
    gold = [data.labels[data.examples[i]["label"]] for i in indices]
    options = EvalOptions(max_rows=200, resamples=1000, seed=0)
    tab = score_models(ctx, [run.reference], rows_data("classification", texts, gold, labels=data.labels), options)
    assert tab.report["metrics"][run.reference] == record["after"]["metrics"]  # the Evaluate tab's numbers

    handlers = FinetuneResultsHandlers(ctx)
    line, note, table = handlers.show(run.reference, "en")
    accuracy = record["after"]["metrics"]["accuracy"]
    shown = f"{accuracy['value']:.4g} [{accuracy['low']:.4g}, {accuracy['high']:.4g}]"
    assert table.loc[table["Metric"] == "Accuracy", "Adapter"].item() == shown
    assert f"{len(indices)} validation rows" in note and "logistic regression" in line
    zh_line, zh_note, zh_table = handlers.show(run.id, "zh-CN")
    assert "验证行" in zh_note and "逻辑回归" in zh_line
    assert list(zh_table.columns)[:3] == ["指标", "基础模型", "适配器"]


def test_the_panel_explains_a_run_without_an_evaluation_and_no_pick(ctx) -> None:
    handlers = FinetuneResultsHandlers(ctx)
    assert handlers.show(None, "en")[1].startswith("Pick a run")
    assert handlers.show("run:no-such-run", "zh-CN")[1].startswith("选择")
    assert handlers.show("", "en")[2].empty


# ---- the default preset on a realistic small set -------------------------------------------------------
@pytest.mark.slow
def test_the_default_preset_on_support_intents_is_reported_against_the_baseline(ctx) -> None:
    """420 customer-support messages, 4 intents, the default (quick) preset, MiniLM: the run is compared with the
    frozen-embedding logistic regression on the same validation rows, and the panel says which won."""
    data = support_intents()
    s = preset("quick")
    run = launched(ctx, data, s, "minilm-l6", "support-intents")
    m = run.metrics
    per_epoch = steps_per_epoch(len(split(data, s.val_split, s.seed, s.max_val_rows)[0]), s)
    assert m["steps_done"] > per_epoch  # the budget goes well past the old single epoch
    baseline = read_baseline(run.path)
    assert baseline is not None and baseline["encoder"] == "minilm-l6"
    message = verdict(baseline, m)
    if m["accuracy"] > baseline["accuracy"] + TIE:
        assert message.key == "finetune_results.baseline_beaten"
    elif m["accuracy"] >= baseline["accuracy"] - TIE:
        assert message.key == "finetune_results.baseline_tied"
    else:
        assert message.key == "finetune_results.baseline_not_beaten"
    line = FinetuneResultsHandlers(ctx).show(run.id, "en")[0]
    assert line == str(message)  # the panel says it plainly
    record = read_before_after(run.path)
    before, after = record["before"]["metrics"]["accuracy"], record["after"]["metrics"]["accuracy"]
    assert after["value"] > before["value"]  # the adapter beats the zero-shot base on held-out rows


# ---- the panel in a browser ------------------------------------------------------------------------------
def fake_run(runs_dir: Path, run_id: str) -> None:
    """A finished classifier run folder with its before/after and baseline files (no training needed)."""
    folder = runs_dir / run_id
    folder.mkdir(parents=True)
    meta = {"id": run_id, "task": "classification", "base_model": "minilm-l6", "status": "complete",
            "labels": ["account", "billing"], "metrics": {"accuracy": 0.95, "macro_f1": 0.949}}
    (folder / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    side = {"accuracy": {"value": 0.6, "low": 0.45, "high": 0.75}, "macro_f1": {"value": 0.58, "low": 0.4, "high": 0.7}}
    after = {"accuracy": {"value": 0.95, "low": 0.875, "high": 1.0},
             "macro_f1": {"value": 0.949, "low": 0.87, "high": 1.0}}
    record = {"version": 1, "task": "classification", "rows": 40, "row_indices": list(range(40)),
              "labels": meta["labels"], "options": {"resamples": 1000, "seed": 0, "max_new_tokens": 24},
              "before": {"model": "minilm-l6", "method": "encoder", "seconds": 1.2, "metrics": side, "outputs": []},
              "after": {"model": f"run:{run_id}", "method": "seq-cls", "seconds": 0.8, "metrics": after,
                        "outputs": []},
              "p_values": {"accuracy": 0.001, "macro_f1": 0.002}}
    (folder / "before_after.json").write_text(json.dumps(record), encoding="utf-8")
    baseline = {"version": 1, "accuracy": 0.975, "macro_f1": 0.974, "seconds": 2.0, "train_rows": 160,
                "val_rows": 40}
    (folder / "baseline.json").write_text(json.dumps(baseline), encoding="utf-8")


@pytest.mark.browser
def test_the_panel_renders_in_chinese_in_the_browser(browser, ctx) -> None:
    import gradio as gr

    from components.finetune_results import build_results_panel
    from components.i18n import I18N
    from tests.test_i18n_ui import english_words

    run_id = "20260101-000000-panel-0001"
    fake_run(ctx.config.runs_dir, run_id)
    with gr.Blocks() as demo:
        pick = gr.Textbox(elem_id="pick")
        build_results_panel(ctx, pick)
    demo.queue().launch(prevent_thread_lock=True, i18n=I18N, quiet=True)
    context = browser.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        page.goto(demo.local_url, wait_until="load")
        page.locator("#pick textarea").fill(run_id)
        table = page.locator("#ft-before-after-table")
        table.wait_for(state="visible", timeout=30_000)
        panel = page.locator("#ft-before-after").inner_text()
        assert "0.95 [0.875, 1]" in table.inner_text() and "准确率" in table.inner_text()
        assert "LoRA 没有胜过基线" in panel and "0.975" in panel  # below the baseline, said plainly
        assert "40 条验证行" in panel
        assert not english_words([panel], {run_id, f"run:{run_id}", "minilm-l6"})
    finally:
        context.close()
        demo.close()


@pytest.mark.browser
def test_the_fine_tune_tab_shows_before_and_after_of_the_picked_run(page, app_server, tiny_root, tmp_path) -> None:
    """The whole app: a run trained through /finetune (the launched child writes the files), its panel in the tab."""
    from playwright.sync_api import expect

    from tests.conftest import open_tab
    from tests.test_finetune_runs_ui import train_run

    run_id = train_run(app_server["url"], tiny_root, tmp_path)
    page.reload()
    page.locator("#app-title").wait_for(timeout=60_000)
    open_tab(page, "Fine-tune")
    expect(page.locator("#ft-run-pick input")).to_have_value(run_id, timeout=15_000)
    table = page.locator("#ft-before-after-table")
    expect(table).to_be_visible(timeout=30_000)
    expect(table).to_contain_text("Accuracy")
    expect(table).to_contain_text("Adapter")
    expect(page.locator("#ft-baseline-verdict")).to_contain_text("logistic regression")
    expect(page.locator("#ft-before-after-note")).to_contain_text(f"run:{run_id}")
