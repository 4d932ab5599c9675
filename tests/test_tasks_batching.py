"""Length-sorted batching keeps the input order, the precision option, metrics by hand, and tiny hub-style
BART (abstractive summaries) and BERT token-classification (entities) models built here."""

from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest
import torch

from components.batch_ui import BatchSpec, run_batch
from pipelines.errors import InputError
from pipelines.tasks import precision
from pipelines.tasks.batch import length_sorted_batches
from pipelines.tasks.classify import SequenceClassifierTask, fine_tuned_classifier
from pipelines.tasks.embeddings import get_encoder
from pipelines.tasks.extract import make_entity_extractor
from pipelines.tasks.metrics import classification_metrics
from pipelines.tasks.summarize import AbstractiveConfig, AbstractiveSummarizer
from tests import tiny_models

WORDS = ["the", "match", "was", "long", "and", "the", "team", "played", "well", "in", "the", "rain"]
TEXTS = [" ".join(WORDS[: 1 + (i * 7) % len(WORDS)]) * (1 + i % 5) for i in range(40)]


@pytest.fixture(scope="module")
def hub_style(tiny_root, shared_cache_dir) -> dict[str, str]:
    """A tiny random BART and a tiny BERT token classifier, in the allowed tiny-models root."""
    return {kind: str(tiny_models.build(kind, tiny_root / f"tiny-{kind}", shared_cache_dir))
            for kind in ("bart", "bert-ner")}


@pytest.fixture
def fresh_decisions(ctx) -> precision.DecisionStore:
    """The context's shared decisions, empty (the context creates its DecisionStore at first use)."""
    assert isinstance(ctx.decisions, precision.DecisionStore) and ctx.decisions is ctx.decisions
    ctx.decisions.clear()
    return ctx.decisions


def test_length_sorted_batches_cover_every_row_once_shortest_first() -> None:
    batches = length_sorted_batches([5, 1, 9, 3, 7], 2)
    assert batches == [[1, 3], [0, 4], [2]]
    assert sorted(i for b in batches for i in b) == list(range(5))


def test_fine_tuned_batches_are_sorted_and_results_come_back_in_input_order(ctx, tiny_root, monkeypatch) -> None:
    task = fine_tuned_classifier(ctx.manager, str(tiny_root / "tiny-bert-cls"), "float32")
    assert isinstance(task, SequenceClassifierTask)
    one_by_one = [task.classify([t])[0] for t in TEXTS]
    seen: list[list[int]] = []  # the token lengths of each batch's rows
    original = SequenceClassifierTask.forward
    monkeypatch.setattr(SequenceClassifierTask, "forward", lambda self, batch: seen.append(
        batch["attention_mask"].sum(1).tolist()) or original(self, batch))
    together = task.classify(TEXTS)
    assert sorted(len(b) for b in seen) == [8, 16, 16]  # batches of 16 (run side by side on a CPU)
    sizes = [n for b in sorted(seen) for n in b]
    assert sizes == sorted(sizes)  # batched by token length ...
    assert [r["label"] for r in together] == [r["label"] for r in one_by_one]  # ... answered in input order
    for a, b in zip(together, one_by_one, strict=True):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)


def test_embeddings_are_returned_in_input_order(ctx) -> None:
    encoder = get_encoder(ctx.manager)
    together = encoder.encode(TEXTS[:12], batch_size=4)
    alone = np.stack([encoder.encode([t])[0] for t in TEXTS[:12]])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_csv_rows_are_predicted_in_input_order(ctx, tiny_root, upload_dir) -> None:
    path = upload_dir / "rows.csv"
    pd.DataFrame({"text": TEXTS}).to_csv(path, index=False)
    task = fine_tuned_classifier(ctx.manager, str(tiny_root / "tiny-bert-cls"), "float32")
    spec = BatchSpec(lambda texts: [{"predicted_label": r["label"], "echo": t}
                                    for r, t in zip(task.classify(texts), texts, strict=True)], task.window)
    *_, (status, preview, files, _, _) = run_batch(ctx, "test-order", str(path), "text", None, lambda: spec)
    assert "40 of 40 rows (done" in status
    assert list(preview["echo"]) == TEXTS
    assert list(preview["predicted_label"]) == [task.classify([t])[0]["label"] for t in TEXTS]
    assert list(pd.read_csv(files[0])["text"]) == TEXTS


def test_precision_options_load_the_right_weights(ctx, tiny_root, fresh_decisions) -> None:
    ref = str(tiny_root / "tiny-bert-cls")
    assert fine_tuned_classifier(ctx.manager, ref, "float32").loaded.key.dtype == "float32"
    int8 = fine_tuned_classifier(ctx.manager, ref, "int8")
    assert int8.loaded.key.dtype == "int8"
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in int8.model.modules())
    bf16 = fine_tuned_classifier(ctx.manager, ref, "bfloat16")
    assert bf16.loaded.key.dtype == "bfloat16" and next(bf16.model.parameters()).dtype == torch.bfloat16
    exact = fine_tuned_classifier(ctx.manager, ref, "float32").classify(TEXTS)
    assert bf16.classify(TEXTS)[0]["scores"] == pytest.approx(exact[0]["scores"], abs=0.05)  # it runs, close
    assert isinstance(fine_tuned_classifier(ctx.manager, ref, decisions=fresh_decisions),
                      precision.AutoPrecision)  # the default is auto
    with pytest.raises(InputError, match="precision"):
        fine_tuned_classifier(ctx.manager, ref, "int4")


def test_auto_precision_measures_once_and_keeps_exact_answers(ctx, tiny_root, fresh_decisions, monkeypatch,
                                                              tmp_path) -> None:
    ref = str(tiny_root / "tiny-bert-cls")
    monkeypatch.setattr("pipelines.tasks.classify.speed_file", lambda _cache: tmp_path / "speed.json")  # nothing kept
    exact = fine_tuned_classifier(ctx.manager, ref, "float32").classify(TEXTS)
    monkeypatch.setattr(precision, "hardware_gate", lambda *_: lambda _name: True)  # try bfloat16 on any CPU
    auto = fine_tuned_classifier(ctx.manager, ref, "auto", decisions=fresh_decisions)
    assert [r["label"] for r in auto.classify(TEXTS[:3])] == [r["label"] for r in exact[:3]]
    assert auto.decision is None and "too few rows" in str(auto.describe())  # a few rows never trigger it
    monkeypatch.setattr(precision, "CALIBRATION_ROWS", 32)
    monkeypatch.setattr(precision, "DECIDE_ROWS", 32)
    monkeypatch.setattr(precision, "MIN_AGREEMENT", 1.01)  # no candidate can pass: float32 everywhere
    results = auto.classify(TEXTS)
    assert auto.chosen == "float32" and auto.decision.rows == 32
    assert set(auto.decision.measured) == {"bfloat16", "int8"}  # both candidates were measured
    kept = json.loads((tmp_path / "speed.json").read_text(encoding="utf-8"))  # the pairs, kept for this CPU
    assert [set(entry) for entry in kept.values()] == [{"bfloat16", "int8"}]
    assert [r["label"] for r in results] == [r["label"] for r in exact]
    assert str(auto.describe()).startswith("Precision: float32, chosen automatically: ")
    assert fresh_decisions.get(auto.key) is auto.decision  # kept on the context, for every session
    assert not any(m["dtype"] in ("int8", "bfloat16") and m["model"] == "tiny-bert-cls"
                   for m in ctx.manager.loaded())  # the losers' weights were released
    fresh_decisions.clear()
    monkeypatch.setattr(precision, "MIN_AGREEMENT", 0.0)  # every candidate passes on agreement ...
    monkeypatch.setattr(precision, "MIN_SPEEDUP", 0.0)  # ... and on speed: the faster one wins
    monkeypatch.setattr(precision, "REJECT_BELOW", 0.0)
    results = auto.classify(TEXTS)
    speeds = {name: speed for name, (_, _, speed) in auto.decision.measured.items()}
    assert auto.chosen == max(speeds, key=speeds.get)
    measured = precision.calibration_rows([len(t) for t in TEXTS])
    assert len(measured) == 32 and [results[i]["label"] for i in measured] == [exact[i]["label"] for i in measured]
    assert len(results) == len(TEXTS)


CLOCK = [0.0]  # a fake perf_counter: FakeClassifier "takes" delay seconds per row, so speeds are exact


@pytest.fixture
def fake_clock(monkeypatch) -> None:
    monkeypatch.setattr(precision, "time", types.SimpleNamespace(perf_counter=lambda: CLOCK[0]))


class FakeClassifier:
    """Answers ``label`` for rows whose number is not in ``flips`` (else "other"), taking ``delay`` per row."""

    labels, batch_size, window = ["a", "other"], 8, 512

    def __init__(self, delay: float, flips: set[int] = frozenset(), label: str = "a") -> None:
        self.delay, self.flips, self.label, self.rows = delay, flips, label, 0

    def classify(self, texts: list[str]) -> list[dict]:
        CLOCK[0] += self.delay * len(texts)
        self.rows += len(texts)
        return [{"label": "other" if int(t.split()[1]) in self.flips else self.label, "scores": {}} for t in texts]


ROWS = [f"row {i}" for i in range(300)]


def test_auto_precision_picks_the_fastest_candidate_that_agrees(fresh_decisions, fake_clock) -> None:
    sample = precision.calibration_rows([len(t) for t in ROWS])
    flips = {int(ROWS[i].split()[1]) for i in sample[precision.PROBE_ROWS:][::20]}  # 2 rows, in the third chunk
    exact, fast, faster = FakeClassifier(0.002), FakeClassifier(0.001), FakeClassifier(0.0002, flips=flips)
    auto = precision.AutoPrecision(exact, {"bfloat16": lambda: faster, "int8": lambda: fast}, key="fake",
                                   store=fresh_decisions, gate=lambda _name: True)
    results = auto.classify(ROWS)
    # the faster one agreed on the first two chunks but flipped a row in the third: dropped there, at once
    assert auto.chosen == "int8"
    assert auto.decision.measured["bfloat16"][:2] == (47 / 48, 48)
    assert auto.decision.measured["int8"][:2] == (1.0, 64)
    assert auto.decision.measured["bfloat16"][2] == pytest.approx(10.0)  # median of the paired speed-ups
    assert auto.decision.measured["int8"][2] == pytest.approx(2.0)
    assert [r["label"] for r in results] == ["a"] * 300  # calibration rows keep float32's answers
    warm = precision.WARMUP_ROWS
    assert exact.rows == warm + 64 and faster.rows == warm + 48  # float32 only on the calibration rows
    assert fast.rows == warm + 300  # the winner: the calibration rows, then every later row
    assert str(auto.describe()) == ("Precision: int8, chosen automatically: same labels as float32 on 64 of 64 rows,"
                                    " 2.0x faster.")
    assert auto.describe().render("zh-CN").startswith("精度：int8，自动选择：")


def test_auto_precision_keeps_float32_when_nothing_is_worth_it(fresh_decisions, fake_clock) -> None:
    exact, slow, same = FakeClassifier(0.001), FakeClassifier(0.002), FakeClassifier(0.001)
    auto = precision.AutoPrecision(exact, {"bfloat16": lambda: slow, "int8": lambda: same}, "k", fresh_decisions,
                                   gate=lambda _name: True)
    auto.classify(ROWS)
    assert auto.chosen == "float32"
    assert slow.rows == precision.WARMUP_ROWS + precision.CHUNK_ROWS  # slower on its first chunk: dropped at once
    assert same.rows == precision.WARMUP_ROWS + 64  # as fast: measured to the end, short of the margin
    assert str(auto.describe()) == ("Precision: float32, chosen automatically: the fastest alternative, int8, ran "
                                    "only 1.0x as fast as float32.")


def test_auto_precision_decides_on_the_median_of_interleaved_pairs(fresh_decisions, monkeypatch) -> None:
    """A burst of load from another process during one timing must not decide (the old auto timed int8 once
    on 32 rows, read 0.96x from noise and stayed slower than it needed to be; or the reverse)."""
    clock = [0.0]
    order: list[str] = []

    class Timed(FakeClassifier):
        def __init__(self, name: str, delay: float, bursts: set[int]) -> None:
            super().__init__(delay)
            self.name, self.bursts, self.calls = name, bursts, 0

        def classify(self, texts: list[str]) -> list[dict]:
            self.calls += 1
            order.append(self.name)
            clock[0] += self.delay * len(texts) * (10 if self.calls in self.bursts else 1)
            return [{"label": "a", "scores": {}} for _ in texts]

    monkeypatch.setattr(precision, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    # int8 as fast as float32, but float32's second timed chunk (call 3: warm-up, chunk 1, chunk 2) hits a burst
    exact, same = Timed("float32", 0.001, {3}), Timed("int8", 0.001, set())
    auto = precision.AutoPrecision(exact, {"int8": lambda: same}, "burst", fresh_decisions, gate=lambda _n: True)
    auto.classify(ROWS)
    assert auto.chosen == "float32" and auto.decision.measured["int8"][2] == pytest.approx(1.0)
    assert order == ["int8", "float32",  # warm-ups, then one chunk each in turn: A B, B A, A B, B A
                     "float32", "int8", "int8", "float32", "float32", "int8", "int8", "float32",
                     "float32"]  # the rest of the rows: float32 (int8 did not clear the margin)
    fresh_decisions.clear()
    order.clear()
    # int8 truly 1.5x faster, but its third timed chunk (call 4 after the warm-up) hits a burst: still chosen
    exact, fast = Timed("float32", 0.0015, set()), Timed("int8", 0.001, {4})
    auto = precision.AutoPrecision(exact, {"int8": lambda: fast}, "burst2", fresh_decisions, gate=lambda _n: True)
    auto.classify(ROWS)
    assert auto.chosen == "int8" and auto.decision.measured["int8"][2] == pytest.approx(1.5)


def test_bfloat16_is_not_tried_where_its_kernels_are_slow(fresh_decisions, fake_clock, monkeypatch) -> None:
    """On a CPU without native bfloat16 a trial costs ~10x float32's time: the gate skips it, loading nothing."""
    from pipelines.models import precision_probe

    loaded: list[str] = []

    def loader(name: str, delay: float):
        return lambda: loaded.append(name) or FakeClassifier(delay)

    speeds = {1: 0.6, 128: 2.5}  # faster for a batch, slower for one row (AVX-512 without native bf16 matmuls)
    monkeypatch.setattr(precision_probe, "bf16_linear_speedups", lambda _w, rows, **_k: {r: speeds[r] for r in rows})
    assert not precision_probe.bf16_is_faster(576, (1, 128)) and precision_probe.bf16_is_faster(576, (128,))
    auto = precision.AutoPrecision(FakeClassifier(0.002), {"bfloat16": loader("bfloat16", 0.0001),
                                                           "int8": loader("int8", 0.001)}, "gate", fresh_decisions,
                                   gate=lambda name: name != "bfloat16")
    auto.classify(ROWS)
    assert loaded == ["int8"] and auto.chosen == "int8" and set(auto.decision.measured) == {"int8"}


def test_auto_precision_survives_a_candidate_that_fails(fresh_decisions, fake_clock) -> None:
    def broken() -> FakeClassifier:
        raise RuntimeError("no bf16 kernels here")

    auto = precision.AutoPrecision(FakeClassifier(0.001), {"bfloat16": broken,
                                                           "int8": lambda: FakeClassifier(0.0, label="b")}, "k",
                                   fresh_decisions, gate=lambda _name: True)
    results = auto.classify(ROWS)
    assert auto.chosen == "float32"  # int8 disagrees on every row; bfloat16 could not run
    assert set(auto.decision.measured) == {"int8"} and auto.decision.measured["int8"][:2] == (0.0, 16)
    assert [r["label"] for r in results] == ["a"] * 300


def test_auto_precision_never_decides_on_a_call_too_small_to_pay_for_it(fresh_decisions, fake_clock) -> None:
    """A small file used to fix the process-wide decision, and its trial cost more than the file could win back."""
    exact, fast = FakeClassifier(0.002), FakeClassifier(0.001)
    auto = precision.AutoPrecision(exact, {"bfloat16": lambda: fast, "int8": lambda: fast}, "small", fresh_decisions,
                                   gate=lambda _name: True)
    results = auto.classify(ROWS[:100])
    assert auto.decision is None and len(fresh_decisions) == 0  # nothing decided, nothing cached for others
    assert exact.rows == 100 and fast.rows == 0 and [r["label"] for r in results] == ["a"] * 100  # float32, exact
    assert str(auto.describe()) == ("Precision: float32, chosen automatically: 100 rows are too few to compare "
                                    "precisions safely (at least 256 are needed), so nothing was decided.")
    other = precision.AutoPrecision(exact, {"bfloat16": lambda: fast, "int8": lambda: fast}, "small", fresh_decisions,
                                    gate=lambda _name: True)
    other.classify(ROWS)  # a larger file of the same model decides, on the promised 64 rows
    assert other.decision.rows == precision.CALIBRATION_ROWS == 64
    assert auto.decision is other.decision  # shared through the store


def test_auto_precision_costs_little_when_nothing_wins(fresh_decisions, fake_clock) -> None:
    """Auto's end-to-end time, its measuring included, stays close to plain float32 batching on a large file."""
    rows = [f"row {i}" for i in range(2000)]
    CLOCK[0] = 0.0
    FakeClassifier(0.001).classify(rows)
    plain = CLOCK[0]
    CLOCK[0] = 0.0
    auto = precision.AutoPrecision(FakeClassifier(0.001), {"bfloat16": lambda: FakeClassifier(0.01),
                                                           "int8": lambda: FakeClassifier(0.0012)}, "cost",
                                   fresh_decisions, gate=lambda _name: True)
    auto.classify(rows)
    assert auto.chosen == "float32" and CLOCK[0] <= plain * 1.12  # two 16-row trials and the warm-ups


def test_calibration_rows_are_similar_length_groups_around_the_quartiles() -> None:
    lengths = [(i * 37) % 500 for i in range(500)]  # 500 rows, lengths 0..499 shuffled
    picked = precision.calibration_rows(lengths)
    assert len(picked) == precision.CALIBRATION_ROWS == len(set(picked))
    probe, other = (sorted(lengths[i] for i in picked[g:g + 32]) for g in (0, 32))
    assert probe == list(range(109, 141)) and other == list(range(359, 391))  # around the 25th and 75th percentile
    assert sorted(precision.calibration_rows([3, 1, 2])) == [0, 1, 2]  # fewer rows than wanted: all of them


def test_agreement_and_metrics_match_a_hand_computation() -> None:
    assert precision.agreement([{"label": "a"}, {"label": "b"}], [{"label": "a"}, {"label": "a"}]) == 0.5
    scores = classification_metrics(["a", "a", "b", "b", "c", ""], ["a", "b", "b", "b", "a", "c"])
    # a: P 1/2 R 1/2 F1 .5; b: P 2/3 R 1 F1 .8; c: F1 0 -> macro (.5 + .8 + 0) / 3; the unlabelled row is skipped
    assert scores["accuracy"] == 0.6 and scores["count"] == 5
    assert scores["macro_f1"] == pytest.approx(1.3 / 3, abs=1e-4)
    assert scores["labels"] == ["a", "b", "c"]
    assert scores["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_tiny_bart_summarises_long_documents_in_chunks(ctx, hub_style) -> None:
    loaded = ctx.manager.load(hub_style["bart"], "seq2seq")
    assert loaded.model.config.model_type == "bart"
    text = " ".join(f"Sentence number {i} talks about the city budget." for i in range(30))
    result = AbstractiveSummarizer(loaded, AbstractiveConfig(max_new_tokens=8, chunk_tokens=60)).summarize(text)
    assert result["chunks"] > 1 and result["levels"] >= 2
    assert isinstance(result["summary"], str)


def test_tiny_bert_ner_spans_match_the_text_offsets(ctx, hub_style) -> None:
    texts = ["Angela Merkel met Tim Cook of Apple in Berlin.", "Paris", "no entities here maybe"]
    found = make_entity_extractor(ctx.manager, hub_style["bert-ner"]).extract_many(texts)
    assert len(found) == 3
    assert any(found), "a random model tags something"
    for ents, text in zip(found, texts, strict=True):
        for e in ents:
            assert e["label"] in {"PER", "ORG", "LOC"}
            assert text[e["start"]:e["end"]] == e["text"]
