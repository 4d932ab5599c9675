"""Training core: settings, data preparation, LoRA targets, runs on tiny models, saved adapters that load back."""

from __future__ import annotations

import json
import time
import zipfile

import pandas as pd
import pytest
import torch

from pipelines.errors import BusyError, InputError, ModelLoadError
from pipelines.tables import Table
from pipelines.training import job as job_module
from pipelines.training.data import ColumnMapping, guess_mapping, prepare, split
from pipelines.training.job import OOM_MESSAGE, TrainingJob
from pipelines.training.settings import TrainSettings, preset
from pipelines.training.spec import JobSpec
from pipelines.training.store import delete_run, merge_run, zip_run
from pipelines.training.tokenize import IGNORE, encode_lm
from pipelines.training.trainer import pick_target_modules

POS = ["great wonderful film", "I loved it", "brilliant and fun", "a delightful story", "superb acting",
       "excellent happy movie", "fantastic and great", "amazing wonderful plot", "lovely charming film",
       "best movie ever", "joyful and brilliant", "a great delight", "wonderful excellent fun",
       "truly fantastic", "beautiful and great", "loved every minute", "a superb delight", "charming great fun",
       "excellent brilliant story", "happy wonderful ending"]
NEG = ["terrible boring film", "I hated it", "awful and dull", "a dreadful story", "horrible acting",
       "worst sad movie", "stupid and awful", "boring terrible plot", "ugly annoying film", "worst movie ever",
       "dull and dreadful", "a total waste", "awful horrible mess", "truly terrible", "bad and boring",
       "hated every minute", "a dreadful bore", "annoying awful mess", "terrible stupid story",
       "sad horrible ending"]


def table(rows: list[dict]) -> Table:
    return Table(pd.DataFrame(rows).astype(str), "utf-8", ",")


def sentiment_table(n: int = 20) -> Table:
    return table([{"text": t, "label": "pos"} for t in POS[:n]] + [{"text": t, "label": "neg"} for t in NEG[:n]])


def lm_table(n: int = 12) -> Table:
    return table([{"prompt": f"Name the colour number {i}", "response": f"Colour {i} is blue."} for i in range(n)])


def tiny_settings(task: str = "classification", **extra) -> TrainSettings:
    values = {"batch_size": 4, "epochs": 1, "max_length": 32, "sample_tokens": 4, "patience": 0, **extra}
    return TrainSettings.from_dict(values, base=preset("quick", task))


def run_job(ctx, data, settings, base: str) -> TrainingJob:
    job = TrainingJob(ctx.config, ctx.training_slots, data, settings, base, name="test", num_threads=2).start()
    job.wait(timeout=600)
    return job


def assert_loads_trained_weights(ctx, run_id: str):
    """The run loads back with exactly the weights the child trained: those of its best checkpoint (written from
    the training process's memory), which is the exported adapter. Returns the loaded model."""
    from safetensors.torch import load_file

    from pipelines.training.checkpoints import WEIGHTS

    run = ctx.runs.get(run_id)
    expected = load_file(str(run.path / "checkpoints" / f"step-{run.metrics['best_step']:07d}" / WEIGHTS))
    loaded = ctx.manager.load(run.reference)
    params = dict(loaded.model.named_parameters())
    assert expected and any("lora_" in name for name in expected)
    for name, tensor in expected.items():
        assert torch.allclose(params[name].detach().float(), tensor.float(), atol=1e-6), name
    return loaded


# ---- settings and spec -----------------------------------------------------------------------
def test_presets_differ_and_fields_are_editable() -> None:
    quick, thorough = preset("quick"), preset("thorough", "classification")
    budget = lambda s: (s.epochs, getattr(s, "max_steps", 0))  # noqa: E731 - fixed passes, or a step budget
    assert budget(quick) < budget(thorough) and quick.lora_r <= thorough.lora_r
    assert preset("quick", "causal-lm").max_length > quick.max_length
    edited = TrainSettings.from_dict(
        {"lora_r": "4", "target_modules": "query, value", "gradient_checkpointing": "true"}
    )
    assert edited.lora_r == 4 and edited.target_modules == ["query", "value"] and edited.gradient_checkpointing
    assert TrainSettings.from_dict({"target_modules": "auto"}).target_modules == []


@pytest.mark.parametrize(
    ("values", "message"),
    [({"lora_r": 0}, "LoRA rank"), ({"val_split": 0.9}, "validation split"), ({"nope": 1}, "Unknown setting"),
     ({"batch_size": "many"}, "must be a number"), ({"epochs": 2.5, "seed": 1.5}, "must be a number")],
)
def test_bad_settings_give_one_clear_message(values: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        TrainSettings.from_dict(values)


def test_job_spec_defaults_and_errors() -> None:
    spec = JobSpec.from_json('{"task": "causal-lm", "preset": "balanced", "settings": {"epochs": 2}}')
    assert spec.base_model == "smollm2-135m-instruct" and spec.settings.epochs == 2
    assert spec.settings.max_length == preset("balanced", "causal-lm").max_length
    assert JobSpec.from_json(spec.to_json()).settings == spec.settings
    for bad, message in [("{", "not valid JSON"), ('{"task": "x"}', "Unknown task"), ('{"foo": 1}', "Unknown field"),
                         ('{"preset": "huge"}', "Unknown preset")]:
        with pytest.raises(InputError, match=message):
            JobSpec.from_json(bad)


# ---- data --------------------------------------------------------------------------------------
def test_report_counts_kept_dropped_labels_and_lengths() -> None:
    rows = [{"text": "good", "label": "pos"}, {"text": "fine", "label": "pos"}, {"text": "bad", "label": "neg"},
            {"text": "awful", "label": "neg"}, {"text": "", "label": "neg"}, {"text": "meh", "label": ""},
            {"text": "odd", "label": "other"}]
    data = prepare(table(rows), "classification", ColumnMapping(text="text", label="label"))
    report = data.report
    assert (report.rows_total, report.rows_kept) == (7, 4)
    assert report.dropped == {"empty_text": 1, "empty_label": 1, "single_label": 1}
    assert report.label_counts == {"neg": 2, "pos": 2} and data.labels == ["neg", "pos"]
    assert report.length_chars["max"] == 5 and report.length_chars["min"] == 3
    assert "4** of 7 rows" in report.to_markdown()
    assert "label appears only once" in report.to_markdown()
    assert "将使用 7 行中的 **4** 行" in report.to_markdown("zh-CN") and "标签为空" in report.to_markdown("zh-CN")


def test_data_limits_and_missing_columns() -> None:
    many = table([{"text": f"t{i}", "label": f"l{i // 2}"} for i in range(30)])
    with pytest.raises(InputError, match="limit is 10"):
        prepare(many, "classification", ColumnMapping(text="text", label="label"), max_labels=10)
    with pytest.raises(InputError, match="no column named 'missing'"):
        prepare(many, "classification", ColumnMapping(text="missing", label="label"))
    with pytest.raises(InputError, match="at least two different labels"):
        prepare(table([{"text": "a", "label": "x"}] * 5), "classification", ColumnMapping("text", "label"))


def test_guess_mapping_and_stratified_split() -> None:
    assert guess_mapping(["Review", "Sentiment"], "classification") == ColumnMapping(text="Review", label="Sentiment")
    assert guess_mapping(["instruction", "output"], "causal-lm") == ColumnMapping(prompt="instruction",
                                                                                   response="output")
    assert guess_mapping(["body"], "causal-lm") == ColumnMapping(text="body")
    data = prepare(sentiment_table(10), "classification", ColumnMapping("text", "label"))
    train_idx, val_idx = split(data, 0.2, seed=1)
    assert len(val_idx) == 4 and not set(train_idx) & set(val_idx)
    assert sorted(data.examples[i]["label"] for i in val_idx) == [0, 0, 1, 1]


def test_lm_encoding_puts_loss_on_response_tokens_only(tiny_root) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_root / "tiny-llama"))
    rows, truncated = encode_lm(tok, [{"prompt": "What is 2+2?", "response": "Four."}], max_length=128)
    ids, labels = rows[0]["input_ids"], rows[0]["labels"]
    kept = [i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE]
    assert truncated == 0 and labels[0] == IGNORE
    assert tok.decode(kept).startswith("Four.<|im_end|>")
    assert "What is 2+2?" in tok.decode(ids[: len(ids) - len(kept)])
    plain, cut = encode_lm(tok, [{"text": "one two three four five six"}], max_length=4)
    assert cut == 1 and plain[0]["labels"] == plain[0]["input_ids"] and len(plain[0]["input_ids"]) == 4


def test_target_modules_are_picked_per_architecture(tiny_root) -> None:
    from transformers import AutoModel

    expected = {"tiny-bert": ["query", "value"], "tiny-llama": ["q_proj", "v_proj"], "tiny-gpt2": ["c_attn"]}
    for name, targets in expected.items():
        assert pick_target_modules(AutoModel.from_pretrained(str(tiny_root / name))) == targets


# ---- runs ----------------------------------------------------------------------------------------
def test_classification_run_saves_and_loads_back_with_same_predictions(ctx, tiny_root) -> None:
    base = str(tiny_root / "tiny-bert")
    data = prepare(sentiment_table(8), "classification", ColumnMapping("text", "label"))
    job = run_job(ctx, data, tiny_settings(learning_rate=0.01), base)
    state = job.snapshot()
    assert state.status == "complete", state.error
    assert state.train_curve and state.val_curve[0][0] == 0 and state.step == state.total_steps
    folder = ctx.config.runs_dir / job.run_id
    meta = json.loads((folder / "run.json").read_text())
    assert meta["task"] == "classification" and meta["base_model"] == base and meta["labels"] == ["neg", "pos"]
    assert meta["status"] == "complete" and meta["name"] == "test" and meta["created"]
    assert {"accuracy", "macro_f1", "per_class", "matrix", "val_loss"} <= set(meta["metrics"])
    assert meta["settings"]["learning_rate"] == 0.01
    assert (folder / "adapter" / "adapter_model.safetensors").is_file() and (folder / "tokenizer").is_dir()
    assert any(json.loads(line)["event"] == "step" for line in (folder / "log.jsonl").read_text().splitlines())
    assert not list(ctx.config.runs_dir.glob(".*"))
    assert (ctx.runs.get(job.run_id).label, f"run:{job.run_id}") in ctx.model_choices(("seq-cls",))

    texts = ["great wonderful film", "terrible boring film", "a dreadful bore"]
    loaded = assert_loads_trained_weights(ctx, job.run_id)
    assert loaded.kind == "seq-cls" and loaded.model.config.id2label == {0: "neg", 1: "pos"}
    with torch.no_grad():
        expected = loaded.model(**loaded.tokenizer(texts, return_tensors="pt", padding=True)).logits

    archive = zip_run(ctx.runs, job.run_id)
    names = zipfile.ZipFile(archive).namelist()
    assert f"{job.run_id}/run.json" in names and f"{job.run_id}/adapter/adapter_model.safetensors" in names
    merged = merge_run(ctx.runs, job.run_id, ctx.config.models_dir, base)
    full = ctx.manager.load(str(merged), "seq-cls")
    with torch.no_grad():
        merged_logits = full.model(**full.tokenizer(texts, return_tensors="pt", padding=True)).logits
    assert torch.allclose(expected, merged_logits, atol=1e-4)
    delete_run(ctx.runs, job.run_id)
    assert job.run_id not in [r.id for r in ctx.runs.list(None)]
    with pytest.raises(ModelLoadError):
        ctx.runs.get(job.run_id)


def test_lm_run_reports_perplexity_and_before_after_generations(ctx, tiny_root) -> None:
    data = prepare(lm_table(16), "causal-lm", ColumnMapping(prompt="prompt", response="response"))
    job = run_job(ctx, data, tiny_settings("causal-lm", learning_rate=0.01, epochs=3), str(tiny_root / "tiny-llama"))
    state = job.snapshot()
    assert state.status == "complete", state.error
    metrics = ctx.runs.get(job.run_id).metrics
    assert metrics["perplexity"] == pytest.approx(torch.tensor(metrics["val_loss"]).exp().item(), rel=1e-4)
    assert len(metrics["generations"]) == 3
    assert all({"prompt", "before", "after"} <= set(g) for g in metrics["generations"])
    assert state.val_curve[-1][1] < state.val_curve[0][1]  # a high learning rate on a repetitive task

    loaded = assert_loads_trained_weights(ctx, job.run_id)
    with torch.no_grad():
        assert torch.isfinite(loaded.model(input_ids=torch.tensor([[1, 2, 3, 4, 5]])).logits).all()


def test_second_training_is_refused_while_one_runs(ctx, tiny_root) -> None:
    data = prepare(sentiment_table(4), "classification", ColumnMapping("text", "label"))
    assert ctx.training_slots.claim({"cpu"}, "someone-else") is None
    try:
        with pytest.raises(BusyError, match="training is busy"):
            TrainingJob(ctx.config, ctx.training_slots, data, tiny_settings(), str(tiny_root / "tiny-bert")).start()
    finally:
        ctx.training_slots.release("someone-else")
    assert not list(ctx.config.runs_dir.iterdir())


def test_stop_ends_cleanly_and_keeps_the_last_evaluation(ctx, tiny_root) -> None:
    data = prepare(sentiment_table(20), "classification", ColumnMapping("text", "label"))
    settings = tiny_settings(epochs=50, eval_every=3)
    job = TrainingJob(ctx.config, ctx.training_slots, data, settings, str(tiny_root / "tiny-bert")).start()
    deadline = time.monotonic() + 300
    while job.snapshot().step < 4 and job.running and time.monotonic() < deadline:
        time.sleep(0.05)
    job.stop()
    job.wait(timeout=300)
    state = job.snapshot()
    assert state.status == "stopped" and state.step < state.total_steps
    run = ctx.runs.find(job.run_id)
    assert run.status == "stopped" and run.adapter_dir.is_dir()
    assert run.metrics["step"] == state.val_curve[-1][0] <= state.step
    assert run.metrics["val_loss"] == state.val_curve[-1][1]
    assert run.metrics["steps_done"] == state.step
    # The folder is whole: renamed into place, run.json, adapter, tokenizer, a log that ends at the stop.
    folder = ctx.config.runs_dir / job.run_id
    assert not list(ctx.config.runs_dir.glob(".*.tmp"))
    meta = json.loads((folder / "run.json").read_text())
    assert meta["status"] == "stopped" and meta["labels"] == ["neg", "pos"] and not meta.get("error")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {f.name for f in run.adapter_dir.iterdir()}
    assert (folder / "tokenizer").is_dir()
    steps = [r["step"] for r in map(json.loads, (folder / "log.jsonl").read_text().splitlines())
             if r["event"] == "step"]
    assert steps == list(range(1, state.step + 1))
    # A stopped run keeps the adapter of its last step and is offered as a model like a complete one.
    assert f"run:{job.run_id}" in [ref for _, ref in ctx.model_choices(("seq-cls",))]
    assert ctx.manager.load(f"run:{job.run_id}").kind == "seq-cls"
    assert ctx.training_slots.is_free()


def test_out_of_memory_marks_the_run_failed_with_a_clear_message(ctx, tiny_root, monkeypatch) -> None:
    from pipelines.training.loop import TEST_OOM_ENV

    monkeypatch.setenv(TEST_OOM_ENV, "1")  # the child raises torch.OutOfMemoryError at its first step
    data = prepare(sentiment_table(4), "classification", ColumnMapping("text", "label"))
    job = run_job(ctx, data, tiny_settings(), str(tiny_root / "tiny-bert"))
    state = job.snapshot()
    assert state.status == "failed" and state.error == OOM_MESSAGE
    run = ctx.runs.find(job.run_id)
    assert run.status == "failed" and run.error == OOM_MESSAGE
    assert ctx.training_slots.is_free()


def test_fine_tuning_spacy_is_refused(ctx) -> None:
    with pytest.raises(InputError, match="spaCy"):
        job_module.base_location("spacy-en-sm", ctx.config)


def test_half_written_runs_are_never_listed(ctx) -> None:
    tmp = ctx.config.runs_dir / ".20250101-000000-x-0000.tmp"
    (tmp / "adapter").mkdir(parents=True)
    (tmp / "run.json").write_text(json.dumps({"task": "classification", "base_model": "minilm-l6",
                                              "status": "complete"}))
    assert ctx.runs.list(None) == []
    with pytest.raises(ModelLoadError):
        ctx.runs.find(tmp.name)


def test_minilm_learns_an_easy_task_in_one_epoch(ctx) -> None:
    data = prepare(sentiment_table(20), "classification", ColumnMapping("text", "label"))
    settings = TrainSettings.from_dict(
        {"epochs": 1, "batch_size": 4, "learning_rate": 5e-3, "max_length": 16, "val_split": 0.25, "seed": 0},
        base=preset("quick"),
    )
    job = run_job(ctx, data, settings, "minilm-l6")
    state = job.snapshot()
    assert state.status == "complete", state.error
    assert state.metrics["count"] == 10 and state.metrics["accuracy"] > 0.5


# ---- CSV to adapter, end to end ------------------------------------------------------------------
def test_forty_row_csv_trains_an_adapter_that_loads_and_classifies(ctx, tiny_root, tmp_path) -> None:
    from pipelines.tables import read_table
    from pipelines.tasks.classify import SequenceClassifierTask

    labels = ["négatif ☹", "positif 5/5"]  # odd label names must survive run.json and the model config
    path = tmp_path / "reviews.csv"
    rows = [{"text": t, "label": labels[1]} for t in POS] + [{"text": t, "label": labels[0]} for t in NEG]
    pd.DataFrame(rows).to_csv(path, index=False)
    data = prepare(read_table(path), "classification", ColumnMapping("text", "label"))
    assert len(data.examples) == 40 and data.labels == labels
    job = run_job(ctx, data, tiny_settings(batch_size=8, learning_rate=0.01), str(tiny_root / "tiny-bert"))
    state = job.snapshot()
    assert state.status == "complete", state.error
    assert 1 <= state.step == state.total_steps <= 5  # 32 training rows, batch 8: a few steps
    run = ctx.runs.get(job.run_id)
    assert run.labels == labels
    assert json.loads((run.adapter_dir.parent / "run.json").read_text(encoding="utf-8"))["labels"] == labels
    loaded = assert_loads_trained_weights(ctx, job.run_id)
    assert loaded.model.config.id2label == dict(enumerate(labels))
    assert loaded.model.config.label2id == {label: i for i, label in enumerate(labels)}
    task = SequenceClassifierTask(loaded)
    results = task.classify(["great wonderful film", "terrible boring film"])
    assert [r["label"] in labels for r in results] == [True, True]
    assert all(sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-4) for r in results)
    with torch.no_grad():
        logits = loaded.model(**loaded.tokenizer(["great wonderful film"], return_tensors="pt")).logits
    assert results[0]["label"] == labels[int(logits[0].argmax(-1))]


def test_two_steps_on_smollm2_change_its_next_token_distribution(ctx) -> None:
    rows = [{"instruction": f"What colour is item {i}?", "output": f"Item {i} is bright purple."} for i in range(8)]
    data = prepare(table(rows), "causal-lm", guess_mapping(["instruction", "output"], "causal-lm"))
    settings = tiny_settings("causal-lm", batch_size=3, max_length=48, val_split=0.25, learning_rate=5e-3,
                             sample_tokens=1, eval_every=1000)
    job = run_job(ctx, data, settings, "smollm2-135m-instruct")
    state = job.snapshot()
    assert state.status == "complete", state.error
    assert state.step == state.total_steps == 2
    tuned = ctx.manager.load(f"run:{job.run_id}")
    base = ctx.manager.load("smollm2-135m-instruct")
    assert tuned.kind == base.kind == "causal-lm"
    prompt = base.tokenizer.apply_chat_template([{"role": "user", "content": "What colour is the sky?"}],
                                                tokenize=False, add_generation_prompt=True)
    ids = base.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        before = torch.log_softmax(base.model(input_ids=ids).logits[0, -1].float(), -1)
        after = torch.log_softmax(tuned.model(input_ids=ids).logits[0, -1].float(), -1)
    assert torch.isfinite(after).all()
    kl = torch.sum(after.exp() * (after - before))
    assert kl > 1e-4 and (after - before).abs().max() > 1e-2


# ---- malformed files through the finetune API ------------------------------------------------------
MALFORMED = {
    "empty": (b"", "is empty"),
    "header only": (b"text,label\n", "header row but no data rows"),
    "binary": (bytes(range(256)) * 4, "looks binary"),
    "html": (b"<!DOCTYPE html><html><body><table><tr><td>a</td></tr></table></body></html>\n", "web page"),
    "single class": ("text,label\n" + "".join(f"row {i},same\n" for i in range(6)), "at least two different"),
    "missing column": ("review,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(6)),
                       "no column named 'text'"),
    "too many labels": ("text,label\n" + "".join(f"row {i},l{i // 2}\n" for i in range(202)),
                        "101 different values; the limit is 100"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_each_malformed_csv_gets_its_own_message(app_server, tmp_path, case) -> None:
    from gradio_client import Client, handle_file

    content, message = MALFORMED[case]
    path = tmp_path / "data.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    spec = {"task": "classification", "base_model": "minilm-l6", "preset": "quick"}
    if case == "missing column":
        spec["columns"] = {"text": "text", "label": "label"}
    client = Client(app_server["url"], verbose=False)
    runs_before = len(client.predict(api_name="/runs"))
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(path)), json.dumps(spec), api_name="/finetune")
    assert message in str(info.value) and "Traceback" not in str(info.value)
    assert len(client.predict(api_name="/runs")) == runs_before  # refused before any run folder is made
