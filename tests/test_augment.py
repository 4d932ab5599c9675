"""Data augmentation for classification runs: EDA (seeded), paraphrases with the label kept, training split only."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

import pytest

from pipelines.errors import InputError
from pipelines.training.augment import (
    AUGMENTED,
    Augmenter,
    AugmentSettings,
    augmentation_line,
    clean_paraphrase,
    eda_variants,
    spec_augmenter,
)
from pipelines.training.data import ColumnMapping, prepare, split
from pipelines.training.spec import JobSpec
from tests.test_training import sentiment_table, tiny_settings


def sentiment(n: int = 10):
    return prepare(sentiment_table(n), "classification", ColumnMapping("text", "label"))


def augment(data, settings: AugmentSettings, seed: int = 42, lm_factory=None):
    return Augmenter(data, settings, seed=seed, val_split=0.2, lm_factory=lm_factory).run()


def test_eda_is_deterministic_with_its_seed_and_keeps_each_rows_label() -> None:
    data = sentiment()
    first, again = augment(data, AugmentSettings(eda=2)), augment(data, AugmentSettings(eda=2))
    other = augment(data, AugmentSettings(eda=2), seed=7)
    added = first.examples[len(data.examples):]
    assert added and added == again.examples[len(data.examples):]
    assert added != other.examples[len(data.examples):]
    for row in added:
        source = data.examples[row["source"]]
        assert row[AUGMENTED] == "eda" and row["label"] == source["label"] and row["text"] != source["text"]
        assert not Counter(row["text"].split()) - Counter(source["text"].split())  # only the row's own words
    assert first.report.counts["augmented_eda"] == len(added)
    assert f"added {len(added)} training rows" in first.report.to_markdown("en")
    assert "新增了" in first.report.to_markdown("zh-CN")


def test_eda_variants_delete_or_swap_words() -> None:
    import random

    variants = eda_variants("one two three four five", 4, random.Random(0))
    assert len(variants) == 4 and len(set(variants)) == 4
    assert all(v != "one two three four five" for v in variants)
    words = sorted(["one", "two", "three", "four", "five"])
    assert any(len(v.split()) < 5 for v in variants) and any(sorted(v.split()) == words for v in variants)
    assert eda_variants("single", 3, random.Random(0)) == []


def test_only_the_training_split_grows() -> None:
    data = sentiment()
    train, val = split(data, 0.2, 42)
    out = augment(data, AugmentSettings(eda=3))
    train2, val2 = split(out, 0.2, 42)
    added = [i for i, e in enumerate(out.examples) if e.get(AUGMENTED)]
    assert val2 == val and not set(added) & set(val2)
    assert train2 == sorted(train + added) and len(train2) > len(train)
    assert {out.examples[i]["source"] for i in added} <= set(train)  # only training rows are augmented


class EchoLM:
    """A stand-in instruct model: answers every prompt with a rewording of its text."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def replies(self, users: Sequence[str], **_: object) -> list[str]:
        self.prompts.extend(users)
        return [f"Paraphrase: variant {i} of {u.rsplit('Text: ', 1)[1]}" for i, u in enumerate(users)]


def test_paraphrases_keep_labels_and_report_their_model() -> None:
    data, lm = sentiment(), EchoLM()
    out = augment(data, AugmentSettings(paraphrase_model="stub", paraphrase_n=2), lm_factory=lambda ref: lm)
    added = [e for e in out.examples if e.get(AUGMENTED) == "paraphrase"]
    train, _ = split(data, 0.2, 42)
    assert len(added) == 2 * len(train) and len(lm.prompts) == 2 * len(train)
    for row in added:
        source = data.examples[row["source"]]
        assert row["label"] == source["label"] and row["text"].endswith(source["text"])
        assert not row["text"].startswith("Paraphrase:")
    assert out.report.counts["augmented_paraphrase"] == len(added) and "stub" in out.report.to_markdown()
    assert clean_paraphrase('"I loved it"', "I loved it", 100) is None  # a copy adds nothing
    assert clean_paraphrase("x" * 500, "short text", 100) is None  # a rambling reply is dropped


def test_paraphrase_with_the_embedded_instruct_model_keeps_labels(ctx) -> None:
    data = prepare(sentiment_table(3), "classification", ColumnMapping("text", "label"))
    spec = JobSpec.from_json({"augment": {"paraphrase": {"model": "smollm2-135m-instruct", "n": 1}},
                              "settings": {"val_split": 0.34}})
    augmenter = spec_augmenter(ctx, data, spec)
    steps = list(augmenter.steps())
    assert steps[0] == (0, 4) and steps[-1] == (4, 4)  # 4 training rows, one paraphrase each
    out = augmenter.result
    added = [e for e in out.examples if e.get(AUGMENTED)]
    assert added, "SmolLM2 wrote no usable paraphrase"
    for row in added:
        source = data.examples[row["source"]]
        assert row["label"] == source["label"] and row["text"].strip() and row["text"] != source["text"]
    assert split(out, 0.34, spec.settings.seed)[1] == split(data, 0.34, spec.settings.seed)[1]


def test_spec_section_is_checked() -> None:
    spec = JobSpec.from_json({"augment": {"eda": 2}})
    assert spec.augment == {"eda": 2} and json.loads(spec.to_json())["augment"] == {"eda": 2}
    assert JobSpec.from_json({}).augment == {} and "augment" not in json.loads(JobSpec().to_json())
    for bad in ({"eda": 99}, {"eda": "many"}, {"synonyms": 1}, {"paraphrase": {"n": 9}}, ["eda"]):
        with pytest.raises(InputError):
            JobSpec.from_json({"augment": bad})
    with pytest.raises(InputError):
        Augmenter(prepare(sentiment_table(4), "classification", ColumnMapping("text", "label")),
                  AugmentSettings(paraphrase_n=1), seed=0, val_split=0.2)  # no paraphraser


def test_results_line_puts_the_run_beside_the_baseline_without_augmentation() -> None:
    baseline = {"accuracy": 0.9, "macro_f1": 0.9, "augmented_rows": 12,
                "without_augmentation": {"accuracy": 0.8, "macro_f1": 0.79, "train_rows": 16, "seconds": 0.1}}
    line = augmentation_line(baseline, {"accuracy": 0.95})
    assert line is not None and "0.950" in line.render() and "0.900" in line.render() and "0.800" in line.render()
    assert augmentation_line({"accuracy": 0.9, "macro_f1": 0.9}, {"accuracy": 0.95}) is None


def test_a_run_with_augmentation_reports_added_rows_and_the_baseline_without_them(ctx, tiny_root, upload_dir) -> None:
    from components.finetune_handlers import FinetuneHandlers
    from components.finetune_results import FinetuneResultsHandlers
    from pipelines.training.baseline import read_baseline

    path = upload_dir / "reviews.csv"
    sentiment_table(10).frame.to_csv(path, index=False)
    settings = tiny_settings(learning_rate=0.01).to_dict()
    spec = {"task": "classification", "base_model": str(tiny_root / "tiny-bert"), "name": "augmented",
            "columns": {"text": "text", "label": "label"}, "settings": settings, "augment": {"eda": 2}}
    handlers = FinetuneHandlers(ctx)
    steps = list(handlers.start_steps(str(path), json.dumps(spec), "s1"))
    job = steps[-1]
    job.wait(timeout=600)
    assert job.snapshot().status == "complete", job.snapshot().error
    run = ctx.runs.get(job.run_id)
    meta = json.loads((run.path / "run.json").read_text())
    added = meta["data"]["counts"]["augmented_eda"]
    assert added == 2 * 16 and any("added 32 training rows" in n for n in meta["data"]["notes"])
    baseline = read_baseline(run.path)
    assert baseline["without_augmentation"]["train_rows"] == 16 and baseline["train_rows"] == 16 + added
    assert baseline["val_rows"] == 4
    shown = FinetuneResultsHandlers(ctx).verdict(run.path, None, "en")
    assert "Augmentation (32 added training rows)" in shown


def test_the_forms_fields_become_the_specs_section() -> None:
    from pipelines.training.augment import spec_with_augment

    base = JobSpec().to_json()
    assert spec_with_augment(base, 0, "smollm2-135m-instruct", 0) == json.dumps(json.loads(base))  # off: unchanged
    merged = json.loads(spec_with_augment(base, 2, " smollm2-135m-instruct ", 1))
    assert merged["augment"] == {"eda": 2, "paraphrase": {"model": "smollm2-135m-instruct", "n": 1}}
    assert JobSpec.from_json(merged).augment == merged["augment"]
    with pytest.raises(InputError):
        spec_with_augment(base, 50, "", 0)
