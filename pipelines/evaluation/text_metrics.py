"""Per-row text metrics for generation: SQuAD exact match and token F1, ROUGE, and sacrebleu's BLEU/chrF statistics.

BLEU and chrF are corpus metrics: each row keeps sacrebleu's sufficient statistics, so a corpus score (and every
bootstrap resample) is ``score_from_stats(sum of rows' statistics)``, exactly what ``corpus_score`` computes.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import TYPE_CHECKING, Any

from pipelines.tasks.metrics import ROUGE_TYPES, CharTokenizer
from pipelines.tasks.sentences import has_cjk

if TYPE_CHECKING:
    import numpy as np

ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The SQuAD v1.1 script's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = (text or "").lower()
    text = "".join(ch for ch in text if ch not in PUNCTUATION)
    text = ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_tokens(text: str) -> list[str]:
    """SQuAD tokens of the normalised text; Chinese text is split into characters (words have no spaces)."""
    normal = normalize_answer(text)
    return CharTokenizer().tokenize(normal) if has_cjk(normal) else normal.split()


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised texts are equal (SQuAD definition), else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1: harmonic mean of token precision and recall over the bag of shared tokens."""
    pred, ref = answer_tokens(prediction), answer_tokens(reference)
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


class RougeBatch:
    """ROUGE-1/2/L F1 per row with one scorer per language (stemmed words; Chinese by character)."""

    def __init__(self) -> None:
        from rouge_score import rouge_scorer

        self.latin = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
        self.cjk = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False, tokenizer=CharTokenizer())

    def score(self, prediction: str, reference: str) -> dict[str, float]:
        scorer = self.cjk if has_cjk(prediction) or has_cjk(reference) else self.latin
        scores = scorer.score(reference or "", prediction or "")
        return {name: float(scores[name].fmeasure) for name in ROUGE_TYPES}

    def many(self, predictions: list[str], references: list[str]) -> dict[str, list[float]]:
        rows = [self.score(p, r) for p, r in zip(predictions, references, strict=True)]
        return {name: [row[name] for row in rows] for name in ROUGE_TYPES}


def sacre_tokenize(references: list[str]) -> str:
    """sacrebleu's tokenizer for these references: ``zh`` when any is Chinese, else the default ``13a``."""
    return "zh" if any(has_cjk(r) for r in references) else "13a"


class SacreStats:
    """Sentence statistics and corpus scores of sacrebleu's BLEU and chrF for one reference set."""

    def __init__(self, references: list[str]) -> None:
        from sacrebleu.metrics import BLEU, CHRF

        self.tokenize = sacre_tokenize(references)
        self.metrics = {"bleu": BLEU(tokenize=self.tokenize), "chrf": CHRF()}
        self.references = list(references)

    def stats(self, predictions: list[str]) -> dict[str, np.ndarray]:
        """``{metric: rows x statistics}`` matrices (sums of rows give the corpus statistics)."""
        import numpy as np

        refs = [self.references[: len(predictions)]]
        return {name: np.asarray(metric._extract_corpus_statistics(list(predictions), refs), dtype=np.int64)
                for name, metric in self.metrics.items()}

    def score(self, name: str, summed: Any) -> float:
        """The corpus score (0-100) from summed statistics."""
        return float(self.metrics[name]._compute_score_from_stats([int(x) for x in summed]).score)


def text_length(text: str) -> int:
    """Length in words (whitespace-separated), or in characters' tokens for Chinese text."""
    text = text or ""
    return len(CharTokenizer().tokenize(text)) if has_cjk(text) else len(text.split())
