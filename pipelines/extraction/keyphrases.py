"""Keyphrases: spaCy noun chunks and named entities as candidates (whole phrases, never odd n-grams), ranked by
MiniLM similarity to the whole text and diversified with MMR. Chinese text (which the English spaCy pipeline cannot
parse) falls back to character n-grams."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pipelines.errors import InputError
from pipelines.extraction.spans import LEADING, PRONOUNS, make_span
from pipelines.tasks.sentences import CJK, has_cjk

MAX_CANDIDATES = 120
MAX_WORDS = 5
NUMERIC_LABELS = frozenset({"DATE", "TIME", "CARDINAL", "ORDINAL", "MONEY", "PERCENT", "QUANTITY"})


def cjk_candidates(text: str, max_ngram: int = 3) -> list[str]:
    counts: Counter[str] = Counter()
    for run in re.findall(rf"(?:{CJK.pattern})+", text):
        for n in range(2, max_ngram + 2):
            counts.update(run[i:i + n] for i in range(len(run) - n + 1))
    return [gram for gram, _ in counts.most_common(MAX_CANDIDATES)]


def phrase_candidates(doc: Any, text: str) -> list[str]:
    """Noun chunks and non-numeric entities of a spaCy ``doc``: trimmed, at most :data:`MAX_WORDS` words, one
    surface form per phrase (case-insensitive), most frequent first."""
    spans = [make_span(text, c.start_char, c.end_char, "NP") for c in doc.noun_chunks]
    spans += [make_span(text, e.start_char, e.end_char, e.label_) for e in doc.ents if e.label_ not in NUMERIC_LABELS]
    counts: Counter[str] = Counter()
    surface: dict[str, str] = {}
    for span in spans:
        if span is None:
            continue
        words = span.text.split()
        while words and words[0].lower() in LEADING | PRONOUNS:
            words = words[1:]
        phrase = " ".join(words)
        key = phrase.lower()
        if not words or len(words) > MAX_WORDS or key in PRONOUNS or not re.search(r"[^\W\d_]{2}", phrase):
            continue
        surface.setdefault(key, phrase)
        counts[key] += 1
    return [surface[key] for key, _ in counts.most_common(MAX_CANDIDATES)]


class Keyphrases:
    """``extract(text, top_k) -> [{phrase, score}]`` with a sentence ``encoder`` and spaCy ``nlp``."""

    def __init__(self, encoder: Any, nlp: Any, diversity: float = 0.5) -> None:
        self.encoder, self.nlp, self.diversity = encoder, nlp, diversity

    def candidates(self, text: str) -> list[str]:
        return cjk_candidates(text) if has_cjk(text) else phrase_candidates(self.nlp(text), text)

    def extract(self, text: str, top_k: int = 8) -> list[dict]:
        from pipelines.tasks.embeddings import mmr

        if not (text or "").strip():
            raise InputError("extract.no_text")
        candidates = self.candidates(text)
        if not candidates:
            return []
        vectors = self.encoder.encode([text, *candidates], batch_size=64)
        doc, cands = vectors[0], vectors[1:]
        relevance = cands @ doc
        chosen = mmr(relevance, cands @ cands.T, max(1, int(top_k)), self.diversity)
        return [{"phrase": candidates[i], "score": round(float(relevance[i]), 4)}
                for i in sorted(chosen, key=lambda i: -relevance[i])]

    def extract_many(self, texts: list[str], top_k: int = 8) -> list[list[dict]]:
        return [self.extract(x, top_k) if (x or "").strip() else [] for x in texts]
