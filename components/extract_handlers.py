"""The Extract tab's actions as plain methods (testable without a server): values in, values out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from components.extract_tables import entity_table, fields_table, keyphrase_table, translate_highlight
from components.i18n import request_lang, say
from pipelines.context import AppContext
from pipelines.errors import InputError
from pipelines.messages import Msg

Progress = Callable[[float, str], None] | None
DEFAULT_NER = "spacy-en-sm"


class ExtractHandlers:
    """Entities, answers, fields, keyphrases and the CSV batch, on the shared :class:`AppContext`."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def _cut(self, value: str | None) -> tuple[str, Msg | None]:
        if not (value or "").strip():
            raise InputError("extract.no_text")
        return self.ctx.limits.cut(value)

    def entities(self, text: str, model: str, lang: str | None = None,
                 progress: Progress = None) -> tuple[dict, pd.DataFrame, str]:
        """(highlight value, entity table, note): the text's named entities with what each label means."""
        from pipelines.tasks.extract import highlight_value, make_entity_extractor

        lang = lang or request_lang()
        text, cut = self._cut(text)
        ents = make_entity_extractor(self.ctx.manager, model, progress).extract_many([text])[0]
        return highlight_value(text, ents), entity_table(ents, lang), say(cut, lang)

    def answer(self, question: str, context: str, model: str, lang: str | None = None,
               progress: Progress = None, engine: str = "auto") -> tuple[str, dict, dict]:
        """(answer, highlight, details): the answer is a span of the context, or empty with a note (the LM may be
        remote; ``engine`` runs a local one)."""
        from pipelines.extraction.grounded_qa import check_question
        from pipelines.tasks.qa import answer_question, qa_highlight

        lang = lang or request_lang()
        check_question(question, context)
        context, cut = self.ctx.limits.cut(context)
        result = answer_question(self.ctx.manager, model, question, context, progress=progress, ctx=self.ctx,
                                 engine=engine)
        notes = [say(m, lang) for m in (result.note, cut) if m is not None]
        details = result.as_dict(" ".join(notes) or None)
        return result.answer, translate_highlight(qa_highlight(context, result), lang), details

    def fields(self, text: str, fields: str, model: str, lang: str | None = None,
               progress: Progress = None, engine: str = "auto") -> tuple[pd.DataFrame, str, str]:
        """(field/value/check table, notes, raw reply): every value is a span of the text or is reported (the LM
        may be remote; ``engine`` runs a local one)."""
        from pipelines.extraction.grounded_fields import GroundedFields
        from pipelines.generation.task_lm import task_lm
        from pipelines.tasks.qa import DEFAULT_LM

        lang = lang or request_lang()
        text, cut = self._cut(text)
        manager = self.ctx.manager
        lm = task_lm(self.ctx, (model or "").strip() or DEFAULT_LM, engine or "auto", progress)
        result = GroundedFields(manager.load(DEFAULT_NER, progress=progress).model, lm).extract(text, fields)
        problems = [*result.problems, *([cut] if cut else [])]
        notes = "\n".join(f"- {say(p, lang)}" for p in problems) or say(Msg.of("extract.fields_all_ok"), lang)
        return fields_table(result.as_dict(), lang), notes, result.raw

    def keyphrases(self, text: str, top_k: float, lang: str | None = None) -> tuple[pd.DataFrame, str]:
        """(phrase/score table, note): noun-chunk keyphrases ranked by similarity to the text, diversified."""
        from pipelines.extraction.keyphrases import Keyphrases
        from pipelines.tasks.embeddings import get_encoder

        lang = lang or request_lang()
        text, cut = self._cut(text)
        manager = self.ctx.manager
        finder = Keyphrases(get_encoder(manager), manager.load(DEFAULT_NER).model)
        return keyphrase_table(finder.extract(text, int(top_k or 8)), lang), say(cut, lang)

    def csv(self, file: str | None, text_column: str | None, mode: str, model: str, fields: str, question: str,
            request: Any = None, progress: Any = None, engine: str = "auto") -> Iterator[tuple]:
        """Every row of a CSV/TSV/JSONL file: yields (status, preview, files, metrics, plot) while it runs (a
        remote LM answers several rows at once)."""
        from components.batch_ui import BatchSpec, run_batch
        from pipelines.extraction.rows import ExtractRows

        lang = request_lang(request)

        def make_spec() -> BatchSpec:
            rows = ExtractRows(self.ctx.manager, self.ctx.limits, mode, model, fields, question, lang, self.ctx,
                               engine or "auto")
            return BatchSpec(rows.process, rows.batch_size, None, stem=f"extracted-{rows.mode}")

        yield from run_batch(self.ctx, "extract", file, text_column, None, make_spec, request, progress)
