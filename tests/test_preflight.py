"""The pre-flight check: token lengths and truncation counted exactly as the trainer counts them, a warning when
every row is too long, label balance and oversampling, duplicates and leaks, and a time estimate from a measured
probe that lands within 2x of a short real run measured here."""

from __future__ import annotations

import json
import time
from collections import Counter

import pandas as pd
import pytest

from components.finetune_preflight_handlers import PreflightHandlers, with_oversample
from pipelines.tables import Table
from pipelines.training.balance import oversample
from pipelines.training.data import ColumnMapping, prepare, split
from pipelines.training.job import TrainingJob
from pipelines.training.preflight import Preflight, load_tokenizer, suggest_max_length
from pipelines.training.preflight_probe import Prober, ProbeResult
from pipelines.training.settings import TrainSettings, preset
from pipelines.training.spec import JobSpec
from pipelines.training.tokenize import encode_lm

WORDS = ["great", "awful", "film", "story", "acting", "plot", "music", "ending", "boring", "lovely"]


def table(rows: list[dict]) -> Table:
    return Table(pd.DataFrame(rows), "utf-8", ",")


def reviews(n: int = 60, rare_every: int = 1, long_every: int = 3) -> list[dict]:
    rows = []
    for i in range(n):
        words = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(4 + (i % long_every) * 9))
        label = "neg" if rare_every > 1 and i % rare_every == 0 else ("pos" if i % 2 else "neg")
        if rare_every > 1 and i % rare_every:
            label = "pos"
        rows.append({"text": f"review {i}: {words}", "label": label})
    return rows


def settings(**extra) -> TrainSettings:
    return TrainSettings.from_dict({"batch_size": 4, "max_length": 16, "epochs": 1, "patience": 0, **extra},
                                   base=preset("quick"))


def test_truncated_share_equals_a_direct_count_with_the_tokenizer(tiny_root) -> None:
    data = prepare(table(reviews()), "classification", ColumnMapping("text", "label"))
    tokenizer = load_tokenizer(str(tiny_root / "tiny-bert"))
    report = Preflight().analyse(data, settings(max_length=16), tokenizer, "tiny-bert")
    direct = sum(len(tokenizer(e["text"])["input_ids"]) > 16 for e in data.examples)
    assert 0 < direct < len(data.examples)
    assert report.truncated == direct and report.truncated_share == pytest.approx(direct / len(data.examples))
    assert sum(report.histogram.counts) == len(data.examples)
    assert report.suggested_max_length % 16 == 0 and report.suggested_max_length >= report.length_stats["p95"]
    assert any(w.key == "preflight.warn.truncated" for w in report.warnings)


def test_causal_lm_lengths_are_the_trainers_encoded_lengths(tiny_root) -> None:
    rows = [{"prompt": f"Question {i}: " + "why " * (i % 7), "response": "Because " + "so " * (i % 11)}
            for i in range(30)]
    data = prepare(table(rows), "causal-lm", ColumnMapping(prompt="prompt", response="response"))
    tokenizer = load_tokenizer(str(tiny_root / "tiny-llama"))
    report = Preflight().analyse(data, settings(max_length=40), tokenizer, "tiny-llama")
    _, cut = encode_lm(tokenizer, data.examples, 40)  # what the trainer cuts
    assert report.truncated == cut and cut > 0


def test_a_file_whose_rows_all_exceed_the_max_length_warns(tiny_root, ctx, upload_dir) -> None:
    rows = [{"text": "a very long review " + " ".join(WORDS) * 3 + f" {i}", "label": "pos" if i % 2 else "neg"}
            for i in range(20)]
    path = upload_dir / "long.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    spec = json.dumps({"task": "classification", "base_model": str(tiny_root / "tiny-bert"),
                       "settings": {"max_length": 8}})
    report = PreflightHandlers(ctx).report(str(path), spec, estimate=False)
    assert report["truncated"] == report["rows"] == 20 and report["truncated_share"] == 1.0
    warning = next(w for w in report["warnings"] if w["key"] == "preflight.warn.all_truncated")
    assert "8" in warning["text"] and report["suggested_max_length"] > 8
    assert len(report["token_lengths"]) == 20 and sum(report["histogram"]["counts"]) == 20


def test_duplicates_near_empty_rows_and_validation_leaks_are_counted(tiny_root) -> None:
    rows = reviews(40) + [{"text": "review 3: " + " ".join(WORDS[3 + k] for k in range(0)), "label": "neg"}]
    rows += [dict(rows[i]) for i in range(10)]  # ten exact repeats
    rows += [{"text": "?!", "label": "pos"}, {"text": "..", "label": "neg"}]
    data = prepare(table(rows), "classification", ColumnMapping("text", "label"))
    s = settings()
    report = Preflight().analyse(data, s, load_tokenizer(str(tiny_root / "tiny-bert")))
    assert report.duplicates >= 10 and report.near_empty == 2
    train_idx, val_idx = split(data, s.val_split, s.seed, s.max_val_rows)
    train_texts = {data.examples[i]["text"].lower() for i in train_idx}
    assert report.in_validation == sum(data.examples[i]["text"].lower() in train_texts for i in val_idx) > 0
    assert {w.key for w in report.warnings} >= {"preflight.warn.duplicates", "preflight.warn.near_empty",
                                                "preflight.warn.leak"}


def test_imbalanced_labels_warn_and_oversampling_balances_the_train_split_only(tiny_root) -> None:
    data = prepare(table(reviews(60, rare_every=6)), "classification", ColumnMapping("text", "label"))
    assert data.report.label_counts["neg"] < data.report.label_counts["pos"] / 2
    tokenizer = load_tokenizer(str(tiny_root / "tiny-bert"))
    report = Preflight().analyse(data, settings(), tokenizer)
    assert report.imbalanced and any(w.key == "preflight.warn.imbalanced" for w in report.warnings)
    balanced = Preflight().analyse(data, settings(oversample=True), tokenizer)
    assert not any(w.key == "preflight.warn.imbalanced" for w in balanced.warnings)
    train_idx, val_idx = split(data, 0.2, 42)
    grown = oversample(train_idx, data.targets, seed=42)
    counts = Counter(data.targets[i] for i in grown)
    assert len(set(counts.values())) == 1 and set(train_idx) <= set(grown) and not set(grown) & set(val_idx)
    assert oversample(train_idx, data.targets, seed=42) == grown  # seeded


def test_start_trains_on_the_oversampled_split(ctx, tiny_root) -> None:
    """The setting reaches the training child: its log counts the balanced train rows."""
    data = prepare(table(reviews(60, rare_every=6)), "classification", ColumnMapping("text", "label"))
    spec = JobSpec.from_json(with_oversample(json.dumps({"settings": {"batch_size": 8, "epochs": 1}}), True))
    assert spec.settings.oversample
    job = TrainingJob(ctx.config, ctx.training_slots if hasattr(ctx, "training_slots") else ctx.training_lock,
                      data, settings(oversample=True, batch_size=8), str(tiny_root / "tiny-bert"), num_threads=2)
    job.start()
    assert job.wait(timeout=600) and job.snapshot().status == "complete"
    train_idx, _ = split(data, 0.2, 42)
    expected = len(oversample(train_idx, data.targets, 42))
    log = job.snapshot().log_text("en")
    assert expected > len(train_idx) and f"{expected} training rows" in log


def test_suggested_max_length_rounds_the_95th_percentile_up() -> None:
    assert suggest_max_length([10] * 95 + [500] * 5) == 16  # 5% may be cut
    assert suggest_max_length(list(range(1, 101))) == 96
    assert suggest_max_length(list(range(100, 401))) == 416  # above 256: multiples of 32


def test_advice_when_it_will_not_fit() -> None:
    probe = ProbeResult(startup_s=2.0, step_s=[0.1, 0.1, 0.1], eval_row_s=0.01, peak_rss_mb=900.0)
    s = settings(batch_size=16, max_length=256)
    est = Prober(memory_limit_mb=800).estimate(probe, s, train_rows=200, val_rows=50, suggested_max_length=64)
    assert not est.fits and est.steps == 13
    keys = [n.key for n in est.notes]
    assert keys == ["preflight.no_fit", "preflight.advice.batch", "preflight.advice.max_length",
                    "preflight.advice.checkpointing"]
    assert est.notes[1].params == {"batch": 8, "accum": 2}
    assert Prober(memory_limit_mb=8000).estimate(probe, s, 200, 50, 64).fits


def test_estimate_is_within_2x_of_a_short_real_run(ctx, tiny_root) -> None:
    """The probe measures the real step of the embedded MiniLM here; then the same run trains, timed here."""
    from pipelines.models.embedded import EMBEDDED, ensure_local_folder
    from pipelines.training.hardware import HardwareSettings, plan

    location = str(ensure_local_folder(EMBEDDED["minilm-l6"], ctx.config.cache_dir))
    data = prepare(table(reviews(60)), "classification", ColumnMapping("text", "label"))
    s = settings(batch_size=8, max_length=32, epochs=1)
    report = Preflight().analyse(data, s, load_tokenizer(location))
    prober = Prober()
    probe = prober.measure(data, s, location, report.lengths, plan(HardwareSettings(), threads=2))
    est = prober.estimate(probe, s, report.train_rows, report.val_rows, report.suggested_max_length)
    assert est.steps == 6 and len(probe.step_s) == 3 and probe.peak_rss_mb > 100 and est.fits
    slots = ctx.training_slots if hasattr(ctx, "training_slots") else ctx.training_lock
    job = TrainingJob(ctx.config, slots, data, s, "minilm-l6", num_threads=2)
    started = time.perf_counter()
    job.start()
    assert job.wait(timeout=900) and job.snapshot().status == "complete"
    wall = time.perf_counter() - started
    trained = job.snapshot().metrics["train_seconds"]
    assert trained / 2 <= est.train_s <= trained * 2, (est.train_s, trained)
    print(f"estimate: train {est.train_s} s, total {est.total_s} s; measured: train {trained} s, total {wall:.1f} s")
    assert wall / 2 <= est.total_s <= wall * 2, (est.total_s, wall)
