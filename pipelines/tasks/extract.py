"""Entity extraction (spaCy offline, or any token-classification model) and keyphrases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.errors import InputError
from pipelines.models.manager import LoadedModel, ModelManager

if TYPE_CHECKING:
    from pipelines.tasks.embeddings import EmbeddingTask

DEFAULT_NER = "spacy-en-sm"


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
            raise InputError("extract.no_fast_tokenizer", model=loaded.ref.name)
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


def keyphrases(encoder: EmbeddingTask, text: str, top_k: int = 8, nlp: Any = None) -> list[dict]:
    """Noun-chunk/entity keyphrases ranked against the whole text, diversified with MMR (see
    :class:`pipelines.extraction.keyphrases.Keyphrases`); ``nlp`` is spaCy's pipeline (needed for English)."""
    from pipelines.extraction.keyphrases import Keyphrases

    return Keyphrases(encoder, nlp).extract(text, top_k)
