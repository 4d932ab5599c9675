"""Length-sorted batching keeps the input order, the precision option, metrics by hand, and tiny hub-style
BART (abstractive summaries) and BERT token-classification (entities) models built here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
def fresh_decisions(monkeypatch) -> dict:
    decisions: dict = {}
    monkeypatch.setattr(precision, "_DECISIONS", decisions)
    return decisions


def test_length_sorted_batches_cover_every_row_once_shortest_first() -> None:
    batches = length_sorted_batches([5, 1, 9, 3, 7], 2)
    assert batches == [[1, 3], [0, 4], [2]]
    assert sorted(i for b in batches for i in b) == list(range(5))


def test_fine_tuned_batches_are_sorted_and_results_come_back_in_input_order(ctx, tiny_root, monkeypatch) -> None:
    task = fine_tuned_classifier(ctx.manager, str(tiny_root / "tiny-bert-cls"), "float32")
    assert isinstance(task, SequenceClassifierTask)
    one_by_one = [task.classify([t])[0] for t in TEXTS]
    seen: list[list[str]] = []
    original = SequenceClassifierTask.__call__
    monkeypatch.setattr(SequenceClassifierTask, "__call__", lambda self, batch: seen.append(batch) or
                        original(self, batch))
    together = task.classify(TEXTS)
    assert [len(b) for b in seen] == [16, 16, 8]
    sizes = [len(task.tokenizer(t)["input_ids"]) for b in seen for t in b]
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
    assert isinstance(fine_tuned_classifier(ctx.manager, ref), precision.AutoPrecision)  # the default is auto
    with pytest.raises(InputError, match="precision"):
        fine_tuned_classifier(ctx.manager, ref, "int4")


def test_auto_precision_measures_once_and_keeps_exact_answers(ctx, tiny_root, fresh_decisions, monkeypatch) -> None:
    ref = str(tiny_root / "tiny-bert-cls")
    exact = fine_tuned_classifier(ctx.manager, ref, "float32").classify(TEXTS)
    auto = fine_tuned_classifier(ctx.manager, ref, "auto")
    assert [r["label"] for r in auto.classify(TEXTS[:3])] == [r["label"] for r in exact[:3]]
    assert auto.decision is None  # a few rows never trigger the measurement
    monkeypatch.setattr(precision, "CALIBRATION_ROWS", 32)
    monkeypatch.setattr(precision, "MIN_AGREEMENT", 1.01)  # int8 can never pass: float32 everywhere
    results = auto.classify(TEXTS)
    assert auto.chosen == "float32" and auto.decision[2] == 32
    assert [r["label"] for r in results] == [r["label"] for r in exact]
    assert "float32" in auto.describe() and "32 rows" in auto.describe()
    fresh_decisions.clear()
    monkeypatch.setattr(precision, "MIN_AGREEMENT", 0.0)  # int8 always passes
    results = auto.classify(TEXTS)
    assert auto.chosen == "int8"
    assert [r["label"] for r in results[:32]] == [r["label"] for r in exact[:32]]  # measured rows: float32
    assert len(results) == len(TEXTS)


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
