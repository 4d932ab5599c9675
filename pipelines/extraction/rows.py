"""CSV batch modes of the Extract tab: one processor per mode, each ``process(texts) -> rows`` (plain dicts)."""

from __future__ import annotations

import enum
import json
from typing import Any

from pipelines.errors import InputError
from pipelines.limits import Limits
from pipelines.messages import Msg
from pipelines.models.manager import ModelManager
from pipelines.tasks.extract import DEFAULT_NER, make_entity_extractor
from pipelines.tasks.qa import DEFAULT_LM


class ExtractMode(enum.StrEnum):
    """What the CSV batch extracts from every row (the ``mode`` parameter of ``/extract_csv``)."""

    ENTITIES = "entities"
    KEYPHRASES = "keyphrases"
    FIELDS = "fields"
    ANSWER = "answer"


class EntityRows:
    """``entities`` (text (label); ...) and ``entities_json`` per row."""

    def __init__(self, manager: ModelManager, model: str) -> None:
        self.extractor = make_entity_extractor(manager, model or DEFAULT_NER)
        self.batch_size = self.extractor.batch_size

    def process(self, texts: list[str]) -> list[dict]:
        found = self.extractor.extract_many(texts)
        return [{"entities": "; ".join(f"{e['text']} ({e['label']})" for e in ents),
                 "entities_json": json.dumps(ents, ensure_ascii=False)} for ents in found]


class KeyphraseRows:
    """``keyphrases`` (phrase; ...) per row."""

    batch_size = 8

    def __init__(self, manager: ModelManager) -> None:
        from pipelines.extraction.keyphrases import Keyphrases
        from pipelines.tasks.embeddings import get_encoder

        self.keyphrases = Keyphrases(get_encoder(manager), manager.load(DEFAULT_NER).model)

    def process(self, texts: list[str]) -> list[dict]:
        return [{"keyphrases": "; ".join(k["phrase"] for k in found)}
                for found in self.keyphrases.extract_many(texts)]


class FieldRows:
    """One column per field (a span of the row's text, or empty), plus ``problems`` (English notes)."""

    batch_size = 1

    def __init__(self, manager: ModelManager, model: str, fields: str, lang: str = "en") -> None:
        from pipelines.extraction.grounded_fields import GroundedFields
        from pipelines.tasks.fields import parse_fields

        self.names = parse_fields(fields)
        lm = manager.load((model or "").strip() or DEFAULT_LM, "causal-lm")
        self.fields = GroundedFields(manager.load(DEFAULT_NER).model, lm)
        self.raw = ", ".join(self.names)
        self.lang = lang

    def one(self, text: str) -> dict:
        if not text.strip():
            return {**dict.fromkeys(self.names, ""), "problems": Msg.of("extract.empty_row").render(self.lang)}
        result = self.fields.extract(text, self.raw)
        values = {name: "" if value is None else value for name, value in result.fields.items()}
        return {**values, "problems": " ".join(p.render(self.lang) for p in result.problems)}

    def process(self, texts: list[str]) -> list[dict]:
        return [self.one(x) for x in texts]


class AnswerRows:
    """``answer`` (a span of the row, or empty), ``supported`` and ``evidence`` per row."""

    batch_size = 1

    def __init__(self, manager: ModelManager, model: str, question: str) -> None:
        from pipelines.tasks.qa import make_answerer

        if not (question or "").strip():
            raise InputError("extract.batch_no_question")
        self.question = question.strip()
        self.answerer = make_answerer(manager, model)

    def one(self, text: str) -> dict:
        if not text.strip():
            return {"answer": "", "supported": False, "evidence": ""}
        result = self.answerer.answer(self.question, text)
        return {"answer": result.answer, "supported": result.supported, "evidence": result.evidence}

    def process(self, texts: list[str]) -> list[dict]:
        return [self.one(x) for x in texts]


class ExtractRows:
    """The processor of one mode, with every text cut to the limits first (the batch status says so once)."""

    def __init__(self, manager: ModelManager, limits: Limits, mode: str, model: str = "", fields: str = "",
                 question: str = "", lang: str = "en") -> None:
        try:
            self.mode = ExtractMode((mode or "").strip())
        except ValueError:
            raise InputError("extract.bad_mode", mode=mode) from None
        self.limits = limits
        if self.mode is ExtractMode.ENTITIES:
            self.inner: Any = EntityRows(manager, model)
        elif self.mode is ExtractMode.KEYPHRASES:
            self.inner = KeyphraseRows(manager)
        elif self.mode is ExtractMode.FIELDS:
            self.inner = FieldRows(manager, model, fields, lang)
        else:
            self.inner = AnswerRows(manager, model, question)
        self.batch_size = self.inner.batch_size

    def process(self, texts: list[str]) -> list[dict]:
        return self.inner.process(self.limits.cut_many([str(x) if x is not None else "" for x in texts]))
