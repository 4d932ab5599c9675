"""The Summarize tab's handlers: plain values in, plain values out (no layout), testable without a server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr

from components.batch_ui import BatchSpec, msg_reporter, run_batch
from components.i18n import request_lang, say
from pipelines.context import AppContext
from pipelines.engines.remote_batch import keep_partial, partial_results
from pipelines.errors import InputError, WorkbenchError
from pipelines.messages import Msg
from pipelines.tasks.summarize import (
    AbstractiveSummarizer,
    ExtractiveSummarizer,
    SummarizerSpec,
    build_summarizer,
)

if TYPE_CHECKING:
    import pandas as pd

TAB = "summarize"
RESULT_COLUMN = "model_summary"  # distinct from usual reference column names ("summary")


def make_summarizer(ctx: AppContext, method: str, model: str, sentences: float, ratio: float,
                    max_new_tokens: float, progress: Any = None,
                    engine: str = "auto") -> ExtractiveSummarizer | AbstractiveSummarizer:
    """An extractive or abstractive summariser for the tab's settings (abstractive: local, llama.cpp or remote)."""
    spec = SummarizerSpec(method, model, sentences, ratio, max_new_tokens, engine or "auto")
    return build_summarizer(ctx.manager, spec, progress, ctx)


def rouge_note(scores: dict) -> Msg:
    """Mean ROUGE-1/2/L as one line, or why there is none."""
    if not scores:
        return Msg.of("summarize.rouge_empty")
    return Msg.of("summarize.rouge_mean", rouge1=f"{scores['rouge1']:.3f}", rouge2=f"{scores['rouge2']:.3f}",
                  rougeL=f"{scores['rougeL']:.3f}", count=scores["count"])


def rouge_metrics(results: pd.DataFrame, references: list[str]) -> tuple[Msg, None]:
    from pipelines.tasks.metrics import mean_rouge

    return rouge_note(mean_rouge(results[RESULT_COLUMN].tolist(), references)), None


class SummarizeHandlers:
    """Summarise one text or every row of a table; notes say what was read, kept or cut."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def summarize_text(self, text: str, method: str, model: str, sentences: float, ratio: float,
                       max_new_tokens: float, reference: str, report: Any = None,
                       engine: str = "auto") -> tuple[str, dict, list[Msg]]:
        """The summary, ROUGE against ``reference`` (empty without one) and the notes (as messages)."""
        from pipelines.tasks.metrics import rouge_scores

        if not (text or "").strip():
            raise InputError("summarize.empty_text")
        text, cut = self.ctx.limits.cut(text)
        summarizer = make_summarizer(self.ctx, method, model, sentences, ratio, max_new_tokens, report, engine)
        if isinstance(summarizer, AbstractiveSummarizer):
            result = summarizer.summarize(text, report)
            notes = [Msg.of("summarize.read_chunks", chunks=result["chunks"], levels=result["levels"]),
                     Msg.of("summarize.written_by", model=summarizer.label)]
        else:
            result = summarizer.summarize(text)
            notes = [Msg.of("summarize.kept", count=len(result["sentences"]))]
        notes += [cut] if cut else []
        scores = rouge_scores(result["summary"], reference) if (reference or "").strip() else {}
        return result["summary"], scores, notes

    def summarize(self, text: str, method: str, model: str, sentences: float, ratio: float, max_new_tokens: float,
                  reference: str, engine: str = "auto", progress: gr.Progress = gr.Progress()) -> tuple:
        """Summarise one text. method: extractive | abstractive; ratio > 0 overrides the sentence count; model may
        be remote (``remote:<endpoint>/<model>``); engine (auto, transformers, llama.cpp) runs a local instruct LM.

        Returns the summary, ROUGE-1/2/L against ``reference`` (empty dict without one) and a note.
        """
        lang = request_lang()
        summary, scores, notes = self.summarize_text(text, method, model, sentences, ratio, max_new_tokens,
                                                     reference, msg_reporter(progress, lang), engine)
        return summary, scores, " ".join(say(n, lang) for n in notes)

    def batch_spec(self, method: str, model: str, sentences: float, ratio: float, max_new_tokens: float,
                   engine: str = "auto") -> BatchSpec:
        """The batch's per-rows function; a remote model summarises several rows at once."""
        summarizer = make_summarizer(self.ctx, method, model, sentences, ratio, max_new_tokens, engine=engine)

        def process(texts: list[str]) -> list[dict]:
            try:
                found = summarizer.summarize_many(texts)
            except WorkbenchError as exc:  # a remote failure: the rows done before it travel with the error
                raise keep_partial(exc, [{RESULT_COLUMN: r["summary"]} for r in partial_results(exc)]) from None
            return [{RESULT_COLUMN: r["summary"]} for r in found]

        notes: list[Msg | str] = []
        if isinstance(summarizer, AbstractiveSummarizer):
            notes.append(Msg.of("summarize.written_by", model=summarizer.label))
        return BatchSpec(process, summarizer.batch_size, rouge_metrics, stem="summaries", notes=notes)

    def summarize_csv(self, file: str, text_column: str, reference_column: str, method: str, model: str,
                      sentences: float, ratio: float, max_new_tokens: float, engine: str = "auto",
                      request: gr.Request = None, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        """Summarise every row of a CSV/TSV/JSONL file; with a reference column, report mean ROUGE. A remote model
        (``remote:<endpoint>/<model>``) gets several rows at once; engine runs a local instruct LM.

        Yields (status, preview table, [summaries.csv, summaries.json], metrics, None).
        """
        yield from run_batch(self.ctx, TAB, file, text_column, reference_column,
                             lambda: self.batch_spec(method, model, sentences, ratio, max_new_tokens, engine),
                             request, progress)
