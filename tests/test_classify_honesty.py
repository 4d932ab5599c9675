"""Classify is honest about weak predictions: scores close to uniform are called low confidence (#18.5), a run
whose training metrics say ``under_trained`` is flagged, and NLI zero-shot is offered only where it can work
(#18.7a)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers

from components.classify import method_choices
from components.classify_handlers import ClassifyHandlers
from pipelines.tasks import classification
from pipelines.tasks.classification import Confidence, local_nli_models, nli_availability
from tests.tiny_models import SMALL, bert_tokenizer

TEMPLATE = "This text is about {}."
FOUR = ["billing", "shipping", "returns", "other"]


def uniform_classifier(folder: Path) -> str:
    """A 4-label BERT classifier whose head is all zeros: every label gets exactly 25%."""
    cfg = transformers.BertConfig(vocab_size=len(bert_tokenizer()), max_position_embeddings=256, num_labels=4,
                                  id2label=dict(enumerate(FOUR)), label2id={k: i for i, k in enumerate(FOUR)}, **SMALL)
    model = transformers.BertForSequenceClassification(cfg)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
    model.save_pretrained(folder)
    bert_tokenizer().save_pretrained(folder)
    return str(folder)


def test_confidence_margin_is_zero_at_uniform_and_one_at_certainty() -> None:
    assert Confidence.of({"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}).margin == pytest.approx(0.0)
    assert Confidence.of({"a": 1.0, "b": 0.0}).margin == pytest.approx(1.0)
    assert Confidence.of({"a": 0.27, "b": 0.25, "c": 0.24, "d": 0.24}).low  # barely above chance
    assert not Confidence.of({"a": 0.7, "b": 0.1, "c": 0.1, "d": 0.1}).low


def test_a_uniform_fine_tuned_classifier_is_shown_as_low_confidence(ctx) -> None:
    ref = uniform_classifier(ctx.config.models_dir / "uniform-4")
    handlers = ClassifyHandlers(ctx)
    label, _chart, scores, note = handlers.classify("Where is my parcel?", "finetuned", ref, "", TEMPLATE)
    assert set(scores) == set(FOUR) and all(v == pytest.approx(0.25, abs=1e-6) for v in scores.values())
    assert label in FOUR
    assert "Low confidence: the scores are close to uniform" in note and "25%" in note
    result = handlers.predict("Where is my parcel?", "finetuned", ref, "", TEMPLATE)
    assert [n.key for n in result.notes] == ["classify.low_confidence"]
    assert "置信度低" in result.notes[0].render("zh-CN")


def test_a_clear_prediction_has_no_low_confidence_note(ctx) -> None:
    label, _chart, _scores, note = ClassifyHandlers(ctx).classify(
        "The striker scored twice and the team won the league.", "embeddings", "minilm-l6",
        "sports, cooking, finance", TEMPLATE)
    assert label == "sports" and note == ""


def _run(runs_dir: Path, run_id: str, metrics: dict) -> None:
    folder = runs_dir / run_id
    (folder / "adapter").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"task": "classification", "base_model": "minilm-l6",
                                                 "status": "complete", "name": run_id, "metrics": metrics}))


class _Flat:
    labels, batch_size, window = FOUR, 4, 4

    def classify(self, texts: list[str]) -> list[dict]:
        return [{"label": "billing", "scores": {"billing": 0.26, "shipping": 0.25, "returns": 0.25, "other": 0.24}}
                for _ in texts]

    def describe(self) -> None:
        return None


def test_an_under_trained_run_is_flagged(ctx, monkeypatch) -> None:
    _run(ctx.config.runs_dir, "weak-run", {"accuracy": 0.25, "under_trained": True})
    _run(ctx.config.runs_dir, "good-run", {"accuracy": 0.95})
    monkeypatch.setattr("components.classify_handlers.make_classifier", lambda *a, **k: _Flat())
    handlers = ClassifyHandlers(ctx)
    _label, _chart, _scores, note = handlers.classify("Where is my parcel?", "finetuned", "run:weak-run", "", TEMPLATE)
    assert "Low confidence" in note
    assert "The run 'weak-run' is under-trained" in note
    assert [n.key for n in handlers.model_notes("run:good-run")] == []
    assert [n.key for n in handlers.model_notes("run:weak-run")] == ["classify.under_trained"]
    spec = handlers.batch_spec("finetuned", "run:weak-run", "", TEMPLATE, "auto")  # the batch status says it too
    assert [n.key for n in spec.all_notes()] == ["classify.under_trained"]


def test_low_confidence_over_the_api(client, tiny_root) -> None:
    ref = uniform_classifier(tiny_root / "uniform-4-api")
    label, _chart, scores, note = client.predict("Where is my parcel?", "finetuned", ref, "", TEMPLATE,
                                                 api_name="/classify")
    assert label in FOUR and max(scores.values()) == pytest.approx(0.25, abs=1e-4)
    assert "Low confidence" in note


# ---- NLI zero-shot: offered only where it can work -----------------------------------------------------------
def _nli_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"],
                                                    "label2id": {"ENTAILMENT": 0, "NEUTRAL": 1, "CONTRADICTION": 2}}))
    return folder


def test_nli_models_are_found_in_model_roots_and_the_hub_cache(ctx, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(classification, "_hub_cache", lambda: tmp_path / "hub")
    assert local_nli_models(ctx.config) == []  # tiny-bert-cls (neg/pos) is not an NLI model
    availability = nli_availability(ctx.config)  # offline (HF_HUB_OFFLINE): nothing can enable NLI
    assert not availability.available and availability.note().key == "classify.nli_unavailable"
    assert ClassifyHandlers(ctx).default_model("nli") == ""
    local = _nli_folder(ctx.config.models_dir / "my-mnli")
    snapshot = _nli_folder(tmp_path / "hub" / "models--acme--tiny-mnli" / "snapshots" / "abc123")
    assert snapshot.is_dir()
    assert local_nli_models(ctx.config) == [str(local), "acme/tiny-mnli"]
    assert nli_availability(ctx.config).available
    assert ClassifyHandlers(ctx).default_model("nli") == str(local)


def test_the_method_options_leave_nli_out_when_it_cannot_work() -> None:
    assert [value for _, value in method_choices(False)] == ["embeddings", "lm", "finetuned"]
    assert [value for _, value in method_choices(True)] == ["embeddings", "nli", "lm", "finetuned"]


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server["url"], verbose=False)
