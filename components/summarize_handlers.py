"""The Summarize tab's handlers: plain values in, plain values out (no layout), testable without a server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr

from components.batch_ui import BatchSpec, msg_reporter, run_batch
from components.i18n import request_lang, say
from pipelines.context import AppContext
from pipelines.errors import InputError
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
                    max_new_tokens: float, progress: Any = None) -> ExtractiveSummarizer | AbstractiveSummarizer:
    """An extractive or abstractive summariser for the tab's settings."""
    return build_summarizer(ctx.manager, SummarizerSpec(method, model, sentences, ratio, max_new_tokens), progress)


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
                       max_new_tokens: float, reference: str, report: Any = None) -> tuple[str, dict, list[Msg]]:
        """The summary, ROUGE against ``reference`` (empty without one) and the notes (as messages)."""
        from pipelines.tasks.metrics import rouge_scores

        if not (text or "").strip():
            raise InputError("summarize.empty_text")
        text, cut = self.ctx.limits.cut(text)
        summarizer = make_summarizer(self.ctx, method, model, sentences, ratio, max_new_tokens, report)
        if isinstance(summarizer, AbstractiveSummarizer):
            result = summarizer.summarize(text, report)
            notes = [Msg.of("summarize.read_chunks", chunks=result["chunks"], levels=result["levels"])]
        else:
            result = summarizer.summarize(text)
            notes = [Msg.of("summarize.kept", count=len(result["sentences"]))]
        notes += [cut] if cut else []
        scores = rouge_scores(result["summary"], reference) if (reference or "").strip() else {}
        return result["summary"], scores, notes

    def summarize(self, text: str, method: str, model: str, sentences: float, ratio: float, max_new_tokens: float,
                  reference: str, progress: gr.Progress = gr.Progress()) -> tuple:
        """Summarise one text. method: extractive | abstractive; ratio > 0 overrides the sentence count.

        Returns the summary, ROUGE-1/2/L against ``reference`` (empty dict without one) and a note.
        """
        lang = request_lang()
        summary, scores, notes = self.summarize_text(text, method, model, sentences, ratio, max_new_tokens,
                                                     reference, msg_reporter(progress, lang))
        return summary, scores, " ".join(say(n, lang) for n in notes)

    def batch_spec(self, method: str, model: str, sentences: float, ratio: float, max_new_tokens: float) -> BatchSpec:
        summarizer = make_summarizer(self.ctx, method, model, sentences, ratio, max_new_tokens)

        def process(texts: list[str]) -> list[dict]:
            return [{RESULT_COLUMN: r["summary"]} for r in summarizer.summarize_many(texts)]

        return BatchSpec(process, summarizer.batch_size, rouge_metrics, stem="summaries")

    def summarize_csv(self, file: str, text_column: str, reference_column: str, method: str, model: str,
                      sentences: float, ratio: float, max_new_tokens: float, request: gr.Request,
                      progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        """Summarise every row of a CSV/TSV/JSONL file; with a reference column, report mean ROUGE.

        Yields (status, preview table, [summaries.csv, summaries.json], metrics, None).
        """
        yield from run_batch(self.ctx, TAB, file, text_column, reference_column,
                             lambda: self.batch_spec(method, model, sentences, ratio, max_new_tokens),
                             request, progress)
