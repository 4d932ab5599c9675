"""CSV batch modes of the Extract tab: one processor per mode, each ``process(texts) -> rows`` (plain dicts)."""

from __future__ import annotations

import enum
import json
from typing import Any

from pipelines.engines.remote import is_remote
from pipelines.engines.remote_batch import keep_partial, partial_results
from pipelines.errors import InputError, WorkbenchError
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


def causal_lm(manager: ModelManager, model: str, ctx: Any = None, engine: str = "auto") -> Any:
    """The LM of the fields/answer modes: through :func:`~pipelines.generation.task_lm.task_lm` with the app
    context (remote or llama.cpp possible), else loaded by the manager."""
    ref = (model or "").strip() or DEFAULT_LM
    if ctx is None:
        return manager.load(ref, "causal-lm")
    from pipelines.generation.task_lm import task_lm

    return task_lm(ctx, ref, engine or "auto")


def in_flight(lm: Any) -> int:
    """How many prompts the LM answers at once (a remote one several; local ones one)."""
    return max(1, int(getattr(lm, "max_in_flight", 1) or 1))


def leading_rows(rows: list[dict], filled: list[int], done: list[dict]) -> list[dict]:
    """``rows`` (empty-text rows already filled in) with ``done`` at the first ``filled`` positions; when fewer
    than all are done, only the rows before the first one missing (the leading rows done)."""
    for i, value in zip(filled, done, strict=False):
        rows[i] = value
    return rows if len(done) >= len(filled) else rows[:filled[len(done)]]


class FieldRows:
    """One column per field (a span of the row's text, or empty), plus ``problems`` (English notes)."""

    batch_size = 1

    def __init__(self, manager: ModelManager, model: str, fields: str, lang: str = "en", ctx: Any = None,
                 engine: str = "auto") -> None:
        from pipelines.extraction.grounded_fields import GroundedFields
        from pipelines.tasks.fields import parse_fields

        self.names = parse_fields(fields)
        lm = causal_lm(manager, model, ctx, engine)
        self.fields = GroundedFields(manager.load(DEFAULT_NER).model, lm)
        self.batch_size = 4 * in_flight(self.fields.lm) if in_flight(self.fields.lm) > 1 else 1
        self.raw = ", ".join(self.names)
        self.lang = lang

    def _row(self, result: Any) -> dict:
        values = {name: "" if value is None else value for name, value in result.fields.items()}
        return {**values, "problems": " ".join(p.render(self.lang) for p in result.problems)}

    def one(self, text: str) -> dict:
        return self.process([text])[0]

    def process(self, texts: list[str]) -> list[dict]:
        """The rows' fields; the LM's replies for the non-empty rows are asked for together."""
        filled = [i for i, text in enumerate(texts) if text.strip()]
        rows = [{**dict.fromkeys(self.names, ""), "problems": Msg.of("extract.empty_row").render(self.lang)}
                for _ in texts]
        try:
            results = self.fields.extract_many([texts[i] for i in filled], self.raw)
        except WorkbenchError as exc:
            raise keep_partial(exc, leading_rows(rows, filled, [self._row(r) for r in partial_results(exc)])) from None
        return leading_rows(rows, filled, [self._row(r) for r in results])


class AnswerRows:
    """``answer`` (a span of the row, or empty), ``supported`` and ``evidence`` per row."""

    batch_size = 1

    def __init__(self, manager: ModelManager, model: str, question: str, ctx: Any = None,
                 engine: str = "auto") -> None:
        from pipelines.tasks.qa import make_answerer

        if not (question or "").strip():
            raise InputError("extract.batch_no_question")
        self.question = question.strip()
        self.answerer = make_answerer(manager, model, ctx=ctx, engine=engine)
        width = in_flight(getattr(self.answerer, "lm", None))
        self.batch_size = 4 * width if width > 1 else 1

    def one(self, text: str) -> dict:
        return self.process([text])[0]

    def process(self, texts: list[str]) -> list[dict]:
        """The rows' answers; an LM's replies for the non-empty rows are asked for together."""
        rows = [{"answer": "", "supported": False, "evidence": ""} for _ in texts]
        filled = [i for i, text in enumerate(texts) if text.strip()]
        many = getattr(self.answerer, "answer_many", None)
        contexts = [texts[i] for i in filled]

        def row(result: Any) -> dict:
            return {"answer": result.answer, "supported": result.supported, "evidence": result.evidence}

        try:
            results = many(self.question, contexts) if many else [self.answerer.answer(self.question, c)
                                                                   for c in contexts]
        except WorkbenchError as exc:
            raise keep_partial(exc, leading_rows(rows, filled, [row(r) for r in partial_results(exc)])) from None
        return leading_rows(rows, filled, [row(r) for r in results])


class ExtractRows:
    """The processor of one mode, with every text cut to the limits first (the batch status says so once).

    With the app context ``ctx`` the fields and answer modes may use a remote LM (several rows in flight) or
    the llama.cpp ``engine``.
    """

    def __init__(self, manager: ModelManager, limits: Limits, mode: str, model: str = "", fields: str = "",
                 question: str = "", lang: str = "en", ctx: Any = None, engine: str = "auto") -> None:
        try:
            self.mode = ExtractMode((mode or "").strip())
        except ValueError:
            raise InputError("extract.bad_mode", mode=mode) from None
        self.limits = limits
        if self.mode is ExtractMode.ENTITIES and is_remote(model):
            raise InputError("extract.remote_entities", model=model)
        if self.mode is ExtractMode.ENTITIES:
            self.inner: Any = EntityRows(manager, model)
        elif self.mode is ExtractMode.KEYPHRASES:
            self.inner = KeyphraseRows(manager)
        elif self.mode is ExtractMode.FIELDS:
            self.inner = FieldRows(manager, model, fields, lang, ctx, engine)
        else:
            self.inner = AnswerRows(manager, model, question, ctx, engine)
        self.batch_size = self.inner.batch_size

    def process(self, texts: list[str]) -> list[dict]:
        return self.inner.process(self.limits.cut_many([str(x) if x is not None else "" for x in texts]))
