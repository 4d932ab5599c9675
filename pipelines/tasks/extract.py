"""Entity extraction (spaCy offline, or any token-classification model) and embedding-based keyphrases."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from pipelines.errors import InputError
from pipelines.models.manager import LoadedModel, ModelManager
from pipelines.tasks.embeddings import EmbeddingTask, mmr
from pipelines.tasks.sentences import CJK, has_cjk, split_sentences

DEFAULT_NER = "spacy-en-sm"
MAX_CANDIDATES = 120


class SpacyEntities:
    """Named entities from a spaCy pipeline (``ctx.manager.load("spacy-en-sm").model``)."""

    batch_size = 32

    def __init__(self, loaded: LoadedModel) -> None:
        self.nlp = loaded.model

    def extract_many(self, texts: list[str]) -> list[list[dict]]:
        return [
            [{"text": e.text, "label": e.label_, "start": e.start_char, "end": e.end_char, "score": None}
             for e in doc.ents]
            for doc in self.nlp.pipe(texts, batch_size=self.batch_size)
        ]


class TokenClassifierEntities:
    """Entities from a token-classification model, word pieces aggregated into words and spans."""

    batch_size = 8

    def __init__(self, loaded: LoadedModel) -> None:
        from transformers import TokenClassificationPipeline

        if not getattr(loaded.tokenizer, "is_fast", False):
            raise InputError(f"'{loaded.ref.name}' has no fast tokenizer, which entity aggregation needs.")
        self.pipe = TokenClassificationPipeline(model=loaded.model, tokenizer=loaded.tokenizer,
                                                aggregation_strategy="simple")

    def extract_many(self, texts: list[str]) -> list[list[dict]]:
        outputs = self.pipe(texts, batch_size=self.batch_size)
        return [
            [{"text": text[o["start"]:o["end"]], "label": str(o["entity_group"]), "start": int(o["start"]),
              "end": int(o["end"]), "score": round(float(o["score"]), 4)} for o in out]
            for text, out in zip(texts, outputs, strict=True)
        ]


def make_entity_extractor(manager: ModelManager, ref: str = "", progress: Any = None):
    """spaCy for spaCy references (the offline default), otherwise a token-classification model."""
    ref = (ref or "").strip() or DEFAULT_NER
    resolved = manager.resolve(ref)
    if resolved.is_spacy:
        return SpacyEntities(manager.load(ref, progress=progress))
    return TokenClassifierEntities(manager.load(ref, "token-cls", progress=progress))


def highlight_value(text: str, entities: list[dict]) -> dict:
    """The value ``gr.HighlightedText`` expects: the text plus labelled character spans."""
    return {"text": text, "entities": [{"entity": e["label"], "start": e["start"], "end": e["end"]}
                                       for e in entities]}


def _latin_candidates(text: str, max_ngram: int) -> list[str]:
    from sklearn.feature_extraction.text import CountVectorizer

    try:
        vectorizer = CountVectorizer(ngram_range=(1, max_ngram), stop_words="english",
                                     token_pattern=r"(?u)\b[^\W\d_][\w-]+\b")
        counts = np.asarray(vectorizer.fit_transform(split_sentences(text) or [text]).sum(axis=0))[0]
    except ValueError:  # only stop words
        return []
    vocab = vectorizer.get_feature_names_out()
    ranked = sorted(range(len(vocab)), key=lambda i: (-counts[i], -len(vocab[i])))
    return [str(vocab[i]) for i in ranked[:MAX_CANDIDATES]]


def _cjk_candidates(text: str, max_ngram: int) -> list[str]:
    counts: Counter[str] = Counter()
    for run in re.findall(rf"(?:{CJK.pattern})+", text):
        for n in range(2, max_ngram + 2):
            counts.update(run[i:i + n] for i in range(len(run) - n + 1))
    return [gram for gram, _ in counts.most_common(MAX_CANDIDATES)]


def keyphrases(encoder: EmbeddingTask, text: str, top_k: int = 8, max_ngram: int = 3,
               diversity: float = 0.5) -> list[dict]:
    """Candidate n-grams ranked by similarity to the whole document, diversified with MMR."""
    if not text.strip():
        raise InputError("Type or paste a text first.")
    candidates = _cjk_candidates(text, max_ngram) if has_cjk(text) else _latin_candidates(text, max_ngram)
    if not candidates:
        return []
    vectors = encoder.encode([text, *candidates], batch_size=64)
    doc, cands = vectors[0], vectors[1:]
    relevance = cands @ doc
    chosen = mmr(relevance, cands @ cands.T, top_k, diversity)
    return [{"phrase": candidates[i], "score": round(float(relevance[i]), 4)}
            for i in sorted(chosen, key=lambda i: -relevance[i])]


def keyphrases_many(encoder: EmbeddingTask, texts: list[str], top_k: int = 8) -> list[list[dict]]:
    return [keyphrases(encoder, t, top_k) if t.strip() else [] for t in texts]


def cosine_rank(encoder: EmbeddingTask, query: str, candidates: list[str]) -> np.ndarray:
    """Cosine similarity of ``query`` to each candidate."""
    vectors = encoder.encode([query, *candidates])
    return vectors[1:] @ vectors[0]
