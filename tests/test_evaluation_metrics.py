"""Evaluation metrics against the reference libraries and the SQuAD script, and the bootstrap's promises."""

from __future__ import annotations

import collections
import re
import string

import numpy as np
import pytest

from pipelines.evaluation.bootstrap import (
    MacroF1Stat,
    MeanStat,
    RatioStat,
    SumStat,
    interval,
    paired_p_value,
    resample_weights,
)
from pipelines.evaluation.lm_scoring import windows
from pipelines.evaluation.text_metrics import RougeBatch, SacreStats, exact_match, token_f1

PREDICTIONS = ["The cat sat on the mat.", "A quick brown fox jumps", "Paris is the capital of France",
               "it rained all day", "Numbers: 1, 2 and 3!"]
REFERENCES = ["The cat is sitting on the mat.", "The quick brown fox jumped over the dog",
              "The capital of France is Paris.", "It was sunny all day long.", "numbers 1 2 3"]


# ---- the SQuAD v1.1 evaluation script's definitions, verbatim ---------------------------------------------
def squad_normalize(s: str) -> str:
    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def squad_f1(prediction: str, ground_truth: str) -> float:
    prediction_tokens = squad_normalize(prediction).split()
    ground_truth_tokens = squad_normalize(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


@pytest.mark.parametrize(("pred", "ref"), [*zip(PREDICTIONS, REFERENCES, strict=True),
                                           ("The Eiffel Tower", "eiffel tower"), ("", "something"),
                                           ("an apple", "The apple.")])
def test_exact_match_and_token_f1_follow_the_squad_script(pred: str, ref: str) -> None:
    assert exact_match(pred, ref) == float(squad_normalize(pred) == squad_normalize(ref))
    assert token_f1(pred, ref) == pytest.approx(squad_f1(pred, ref))


def test_exact_match_ignores_case_articles_and_punctuation() -> None:
    assert exact_match("The Eiffel Tower!", "eiffel tower") == 1.0
    assert token_f1("北京是首都", "首都是北京") == pytest.approx(1.0)  # Chinese: characters are the tokens


def test_rouge_matches_rouge_score() -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    ours = RougeBatch().many(PREDICTIONS, REFERENCES)
    for i, (pred, ref) in enumerate(zip(PREDICTIONS, REFERENCES, strict=True)):
        expected = scorer.score(ref, pred)
        for name in ("rouge1", "rouge2", "rougeL"):
            assert ours[name][i] == pytest.approx(expected[name].fmeasure)


ZH_REFERENCES = ["猫坐在垫子上。", "今天天气很好", "巴黎是法国的首都", "下雨了", "一二三"]


@pytest.mark.parametrize("refs", [REFERENCES, ZH_REFERENCES])
def test_bleu_and_chrf_match_sacrebleu_corpus_scores(refs: list[str]) -> None:
    import sacrebleu

    preds = PREDICTIONS if refs is REFERENCES else ["猫坐在垫子上", "天气很好", "法国的首都是巴黎", "下雨", "一二"]
    sacre = SacreStats(refs)
    stats = sacre.stats(preds)
    tokenize = "zh" if refs is not REFERENCES else "13a"
    assert sacre.tokenize == tokenize
    bleu = sacrebleu.corpus_bleu(preds, [refs], tokenize=tokenize).score
    chrf = sacrebleu.corpus_chrf(preds, [refs]).score
    assert sacre.score("bleu", stats["bleu"].sum(axis=0)) == pytest.approx(bleu)
    assert sacre.score("chrf", stats["chrf"].sum(axis=0)) == pytest.approx(chrf)
    assert bleu > 0  # the fixture really overlaps


def test_macro_f1_statistic_matches_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    truth = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    pred = np.array([0, 1, 1, 1, 2, 0, 3, 0])  # label 3 is only predicted: averaged over the true labels
    stat = MacroF1Stat(truth, pred, 4)
    assert stat.point(len(truth)) == pytest.approx(f1_score(truth, pred, labels=[0, 1, 2], average="macro"))
    weights = resample_weights(len(truth), 5, 3)
    for w, value in zip(weights, stat.values(weights), strict=True):
        idx = np.repeat(np.arange(len(truth)), w.astype(int))
        assert value == pytest.approx(f1_score(truth[idx], pred[idx], labels=sorted(set(truth[idx])), average="macro"))


def test_bootstrap_interval_is_seeded_and_contains_the_estimate() -> None:
    rng = np.random.default_rng(1)
    stat = MeanStat(rng.random(200))
    first = interval(stat, resample_weights(200, 500, seed=7))
    again = interval(stat, resample_weights(200, 500, seed=7))
    other = interval(stat, resample_weights(200, 500, seed=8))
    assert first == again
    assert other != first
    assert first.low <= first.value <= first.high
    assert first.low < first.high
    assert first.value == pytest.approx(stat.rows.mean())


def test_ratio_and_sum_statistics_resample_rows_together() -> None:
    nll, tokens = np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0])
    ppl = RatioStat(nll, tokens, np.exp)
    assert ppl.point(3) == pytest.approx(np.exp(2.0))
    summed = SumStat(np.array([[1, 2], [3, 4], [5, 6]]), lambda s: float(s[0]) / float(s[1]))
    assert summed.values(np.array([[2.0, 0.0, 1.0]]))[0] == pytest.approx((2 + 5) / (4 + 6))


def test_identical_models_give_p_one_and_a_real_difference_a_small_p() -> None:
    rng = np.random.default_rng(0)
    a = MeanStat((rng.random(300) < 0.5).astype(float))
    weights = resample_weights(300, 1000, seed=0)
    assert paired_p_value(a, MeanStat(a.rows.copy()), weights) == pytest.approx(1.0)
    better = MeanStat(np.maximum(a.rows, (rng.random(300) < 0.5).astype(float)))  # right wherever a is, and more
    assert paired_p_value(better, a, weights) < 0.01


def test_sliding_windows_score_every_token_once() -> None:
    ids = list(range(10))
    for size, stride in [(4, 3), (4, 2), (20, 5), (2, 1), (4, 4)]:
        segments = windows(ids, size, stride)
        scored = [seg.ids[j] for seg in segments for j in range(seg.start, len(seg.ids))]
        assert scored == ids[1:], (size, stride)
        assert all(len(seg.ids) <= size and seg.start >= 1 for seg in segments)
