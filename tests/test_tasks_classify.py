"""Classification tasks: zero-shot by embeddings on real MiniLM, fine-tuned classifier from a folder, NLI, LM."""

from __future__ import annotations

import pytest
import transformers

from pipelines.errors import InputError
from pipelines.tasks.classify import ClassifierSpec, make_classifier, parse_labels
from tests.tiny_models import SMALL, bert_tokenizer

TEXTS = ["The team won the football match", "Whisk the eggs, then fold in the flour and bake",
         "The central bank raised interest rates and stocks fell"]


def test_zero_shot_embeddings_picks_the_obvious_label(ctx) -> None:
    classifier = make_classifier(ctx.manager, ClassifierSpec("embeddings", "minilm-l6", "sports, cooking, finance"))
    results = classifier.classify(TEXTS)
    assert [r["label"] for r in results] == ["sports", "cooking", "finance"]
    for r in results:
        assert sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-6)
        assert set(r["scores"]) == {"sports", "cooking", "finance"}
        assert list(r["scores"].values()) == sorted(r["scores"].values(), reverse=True)


def test_fine_tuned_classifier_from_a_local_folder(ctx, tiny_root) -> None:
    classifier = make_classifier(ctx.manager, ClassifierSpec("finetuned", str(tiny_root / "tiny-bert-cls")))
    results = classifier.classify(["good film", "bad film", "fine"])
    assert len(results) == 3
    for r in results:
        assert set(r["scores"]) == {"neg", "pos"}
        assert r["label"] in ("neg", "pos")
        assert sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-6)


def _tiny_nli(folder) -> str:
    labels = ["entailment", "neutral", "contradiction"]
    cfg = transformers.BertConfig(vocab_size=len(bert_tokenizer()), max_position_embeddings=256, num_labels=3,
                                  id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)},
                                  **SMALL)
    transformers.BertForSequenceClassification(cfg).save_pretrained(folder)
    bert_tokenizer().save_pretrained(folder)
    return str(folder)


def test_nli_zero_shot_uses_the_entailment_logit(ctx) -> None:
    ref = _tiny_nli(ctx.config.models_dir / "tiny-nli")
    results = make_classifier(ctx.manager, ClassifierSpec("nli", ref, "sports, cooking")).classify(TEXTS[:2])
    assert len(results) == 2
    assert all(sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-5) for r in results)


def test_nli_refuses_a_model_without_entailment_label(ctx, tiny_root) -> None:
    with pytest.raises(InputError, match="entailment"):
        make_classifier(ctx.manager, ClassifierSpec("nli", str(tiny_root / "tiny-bert-cls"), "a, b"))


def test_lm_likelihood_zero_shot_gives_a_distribution(ctx, tiny_root) -> None:
    spec = ClassifierSpec("lm", str(tiny_root / "tiny-llama"), "sports, cooking, finance")
    result = make_classifier(ctx.manager, spec).classify([TEXTS[0]])[0]
    assert set(result["scores"]) == {"sports", "cooking", "finance"}
    assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-6)
    assert result["label"] == max(result["scores"], key=result["scores"].get)


def test_labels_are_parsed_and_checked() -> None:
    assert parse_labels(" a, b ,a\nc；d") == ["a", "b", "c", "d"]
    with pytest.raises(InputError):
        parse_labels("only-one")
    with pytest.raises(InputError):
        make_classifier(None, ClassifierSpec("finetuned", ""))
