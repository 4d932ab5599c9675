"""Why this label? Integrated gradients are complete (attributions sum to the log-probability difference from the
baseline within 5%), a classifier trained here on texts whose label one word decides puts the largest attribution
on that word, the zero-shot method is explained too, and unsupported requests fail with keys."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pipelines.errors import InputError
from pipelines.insight.attribution import make_explainer
from pipelines.tasks.classify import ClassifierSpec

FILLER = ("the", "film", "was", "long", "and", "quiet", "story", "actors", "music", "scene", "very", "we", "saw",
          "it", "on", "friday", "with", "friends", "plot", "ending")
DECIDER = "excellent"


def sentences(rng: random.Random, count: int) -> tuple[list[str], list[int]]:
    """Filler sentences; half of them get the deciding word at a random place (label 1), the rest do not."""
    texts, labels = [], []
    for i in range(count):
        words = rng.choices(FILLER, k=rng.randint(5, 9))
        if i % 2:
            words.insert(rng.randrange(len(words) + 1), DECIDER)
        texts.append(" ".join(words))
        labels.append(i % 2)
    return texts, labels


@pytest.fixture(scope="module")
def trained(tiny_root: Path) -> str:
    """A tiny BERT classifier trained for a few steps on texts where only ``DECIDER`` decides the label."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tiny_root / "why-cls"
    if (folder / "config.json").exists():
        return str(folder)
    torch.manual_seed(0)
    rng = random.Random(0)
    tok = AutoTokenizer.from_pretrained(tiny_root / "tiny-bert-cls")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_root / "tiny-bert-cls")
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(30):
        texts, labels = sentences(rng, 32)
        batch = tok(texts, padding=True, return_tensors="pt")
        loss = model(**batch, labels=torch.tensor(labels)).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_the_deciding_word_gets_the_largest_attribution(ctx, trained: str) -> None:
    explainer = make_explainer(ctx.manager, ClassifierSpec("finetuned", trained))
    for text in ("we saw the film on friday and it was excellent", f"{DECIDER} music and a long quiet story"):
        toward = explainer.explain(text)
        assert toward.predicted == toward.label == "pos" and toward.probability > 0.7
        assert toward.tokens[max(range(len(toward.scores)), key=toward.scores.__getitem__)] == DECIDER
        assert toward.why().startswith(DECIDER)
        against = explainer.explain(text, label="NEG")  # another label, any case
        assert against.label == "neg"
        assert against.tokens[min(range(len(against.scores)), key=against.scores.__getitem__)] == DECIDER


def test_integrated_gradients_are_complete_within_five_percent(ctx, trained: str) -> None:
    explainer = make_explainer(ctx.manager, ClassifierSpec("finetuned", trained))
    for label in ("pos", "neg"):
        result = explainer.explain("the actors and the music were excellent", label=label, steps=64)
        difference = result.output - result.baseline_output  # log-probabilities
        assert abs(difference) > 0.5  # a real difference to explain
        assert abs(sum(result.scores) - difference) <= 0.05 * abs(difference)


def test_gradient_x_input_gives_one_score_per_token(ctx, trained: str) -> None:
    explainer = make_explainer(ctx.manager, ClassifierSpec("finetuned", trained))
    result = explainer.explain("the plot was excellent", method="gradient_x_input")
    assert result.tokens == ["the", "plot", "was", DECIDER] and len(result.scores) == 4
    assert any(score != 0 for score in result.scores)
    assert result.to_json()["baseline_log_probability"] is None


def test_embedding_zero_shot_is_explained(ctx) -> None:
    spec = ClassifierSpec("embeddings", "minilm-l6", "sports, cooking, finance")
    result = make_explainer(ctx.manager, spec).explain("The team won the football match last night.")
    assert result.label == "sports"
    difference = result.output - result.baseline_output
    assert abs(sum(result.scores) - difference) <= 0.05 * abs(difference)
    assert result.top(1)[0][0] == "football"
    answer = result.to_json()
    assert answer["top_tokens"][0] == "football" and len(answer["attributions"]) == len(answer["tokens"])


def test_unsupported_methods_and_unknown_labels_fail_with_keys(ctx, trained: str) -> None:
    with pytest.raises(InputError) as info:
        make_explainer(ctx.manager, ClassifierSpec("lm", "smollm2-135m-instruct", "a, b"))
    assert info.value.key == "insight.err.explain_method"
    with pytest.raises(InputError) as info:
        make_explainer(ctx.manager, ClassifierSpec("finetuned", trained)).explain("excellent", label="maybe")
    assert info.value.key == "insight.err.unknown_label" and "neg, pos" in str(info.value)
    with pytest.raises(InputError) as info:
        make_explainer(ctx.manager, ClassifierSpec("finetuned", trained)).explain("x", method="shap")
    assert info.value.key == "insight.err.attribution"
