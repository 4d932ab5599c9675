"""Summarize tab: extractive (MiniLM centrality + MMR) or abstractive (seq2seq model or instruct LM), with
hierarchical chunking for long documents and ROUGE against a reference; single text or a whole CSV."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from components.batch_ui import BatchSpec, batch_section, run_batch, wire_stop
from components.common import examples, model_picker, progress_reporter, run_example, ui_errors
from components.i18n import localize, t
from pipelines.context import HEAVY, AppContext
from pipelines.errors import InputError
from pipelines.tasks.embeddings import DEFAULT_ENCODER, EmbeddingTask
from pipelines.tasks.lm_prompting import DEFAULT_LM
from pipelines.tasks.metrics import mean_rouge, rouge_scores
from pipelines.tasks.sentences import cap_text
from pipelines.tasks.summarize import (
    AbstractiveConfig,
    AbstractiveSummarizer,
    ExtractiveConfig,
    ExtractiveSummarizer,
)

METHOD_CHOICES = [(t("summarize.method_extractive"), "extractive"),
                  (t("summarize.method_abstractive"), "abstractive")]
DEFAULT_MODELS = {"extractive": DEFAULT_ENCODER, "abstractive": DEFAULT_LM}
MAX_NEW_TOKENS = 512
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
EN_EXAMPLE = (
    "The Great Barrier Reef is the world's largest coral reef system. It lies off the coast of "
    "Queensland, Australia, and stretches for over 2,300 kilometres. The reef is home to thousands of "
    "species of fish, corals and molluscs. Rising sea temperatures have caused several mass bleaching "
    "events in recent years. Scientists warn that the reef could lose most of its coral by the end of the"
    " century. Governments have pledged money to improve water quality and to protect the reef."
)
ZH_EXAMPLE = ("今天上午，市图书馆举行了新馆开放仪式。新馆面积比旧馆大了一倍，藏书超过五十万册。"
              "馆长表示，新馆将延长开放时间，周末也照常开放。不少市民一早就来排队参观。")
RESULT_COLUMN = "model_summary"  # distinct from usual reference column names ("summary")


def make_summarizer(ctx: AppContext, method: str, model: str, sentences: float, ratio: float,
                    max_new_tokens: float, progress=None):
    """An extractive or abstractive summariser for the tab's settings."""
    ref = (model or "").strip() or DEFAULT_MODELS.get(method, "")
    if method == "extractive":
        config = ExtractiveConfig(count=int(sentences or 3), ratio=float(ratio) if ratio else None)
        return ExtractiveSummarizer(EmbeddingTask(ctx.manager.load(ref, "encoder", progress=progress)), config)
    if method != "abstractive":
        raise InputError("Choose the extractive or abstractive method.")
    kind = ctx.manager.default_kind(ctx.manager.resolve(ref))
    if kind not in ("seq2seq", "causal-lm"):
        raise InputError(f"'{ref}' is a {kind} model; abstractive summaries need a seq2seq model or an instruct LM.")
    tokens = max(16, min(MAX_NEW_TOKENS, int(max_new_tokens or 128)))
    return AbstractiveSummarizer(ctx.manager.load(ref, kind, progress=progress), AbstractiveConfig(tokens))


def _rouge_text(scores: dict) -> str:
    if not scores:
        return localize("The reference column is empty, so no ROUGE was computed.")
    return (f"**Mean ROUGE-1** {scores['rouge1']:.3f} · **ROUGE-2** {scores['rouge2']:.3f} · "
            f"**ROUGE-L** {scores['rougeL']:.3f} over {scores['count']} rows")


def rouge_metrics(results: pd.DataFrame, references: list[str]) -> tuple[str, None]:
    return _rouge_text(mean_rouge(results[RESULT_COLUMN].tolist(), references)), None


def build_summarize_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Summarize tab inside the current Blocks context."""
    gr.Markdown(t("summarize.intro"))
    with gr.Row():
        method = gr.Radio(METHOD_CHOICES, value="extractive", label=t("summarize.method"))
        model = model_picker(ctx, kinds=("any",), value=DEFAULT_ENCODER)
    with gr.Row():
        sentences = gr.Slider(1, 20, value=3, step=1, label=t("summarize.sentences"))
        ratio = gr.Slider(0, 1, value=0, step=0.05, label=t("summarize.ratio"), info=t("summarize.ratio_info"))
        max_new = gr.Slider(16, MAX_NEW_TOKENS, value=128, step=16, label=t("summarize.max_new_tokens"))
    with gr.Tab(t("summarize.single")):
        text = gr.Textbox(lines=8, label=t("summarize.text"), elem_id="summarize-text")
        reference = gr.Textbox(lines=2, label=t("summarize.reference"))
        go_btn = gr.Button(t("summarize.run"), variant="primary", elem_id="summarize-run")
        single_examples = examples(
            [[EN_EXAMPLE, "extractive", "minilm-l6", 2], [ZH_EXAMPLE, "extractive", "minilm-l6", 2],
             [EN_EXAMPLE, "abstractive", "smollm2-135m-instruct", 2]],
            [text, method, model, sentences])
        summary = gr.Textbox(lines=5, label=t("summarize.summary"), interactive=False, elem_id="summarize-output")
        with gr.Row():
            rouge = gr.JSON(label=t("summarize.rouge"))
            note = gr.Markdown(elem_id="summarize-note")
    with gr.Tab(t("batch.title")):
        batch = batch_section("summarize", "batch.reference_column")
        batch_examples = examples(
            [[str(EXAMPLES_DIR / "news_zh_gbk.csv"), "文本", "摘要", "extractive", "minilm-l6", 1]],
            [batch.file, batch.text_col, batch.ref_col, method, model, sentences])

    method.change(lambda m: gr.Dropdown(value=DEFAULT_MODELS.get(m, "")), method, model,
                  api_visibility="private", queue=False)

    @ui_errors
    def summarize(text: str, method: str, model: str, sentences: float, ratio: float, max_new_tokens: float,
                  reference: str, progress: gr.Progress = gr.Progress()) -> tuple:
        """Summarise one text. method: extractive | abstractive; ratio > 0 overrides the sentence count.

        Returns the summary, ROUGE-1/2/L against ``reference`` (empty dict without one) and a note.
        """
        if not (text or "").strip():
            raise InputError("Type or paste a text to summarise.")
        text, cut = cap_text(text, ctx.config.max_input_chars)
        report = progress_reporter(progress)
        summarizer = make_summarizer(ctx, method, model, sentences, ratio, max_new_tokens, report)
        if isinstance(summarizer, AbstractiveSummarizer):
            result = summarizer.summarize(text, report)
            notes = [localize(f"Read in {result['chunks']} chunk(s) over {result['levels']} level(s).")]
        else:
            result = summarizer.summarize(text)
            notes = [localize(f"Kept {len(result['sentences'])} sentence(s).")]
        notes += [localize(cut)] if cut else []
        scores = rouge_scores(result["summary"], reference) if (reference or "").strip() else {}
        return result["summary"], scores, " ".join(notes)

    go_btn.click(summarize, [text, method, model, sentences, ratio, max_new, reference], [summary, rouge, note],
                 api_name="summarize", concurrency_id=HEAVY)
    run_example(single_examples, summarize, [text, method, model, sentences, ratio, max_new, reference],
                [summary, rouge, note], concurrency_id=HEAVY)

    @ui_errors
    def summarize_csv(file: str, text_column: str, reference_column: str, method: str, model: str,
                      sentences: float, ratio: float, max_new_tokens: float, request: gr.Request,
                      progress: gr.Progress = gr.Progress()):
        """Summarise every row of a CSV/TSV/JSONL file; with a reference column, report mean ROUGE.

        Yields (status, preview table, [summaries.csv, summaries.json], metrics, None).
        """

        def make_spec() -> BatchSpec:
            summarizer = make_summarizer(ctx, method, model, sentences, ratio, max_new_tokens)
            max_chars = ctx.config.max_input_chars

            def process(texts: list[str]) -> list[dict]:
                out = summarizer.summarize_many([x[:max_chars] for x in texts])
                return [{RESULT_COLUMN: r["summary"]} for r in out]

            return BatchSpec(process, summarizer.batch_size, rouge_metrics, stem="summaries")

        yield from run_batch(ctx, "summarize", file, text_column, reference_column, make_spec, request, progress)

    run_event = batch.run.click(
        summarize_csv, [batch.file, batch.text_col, batch.ref_col, method, model, sentences, ratio, max_new],
        batch.outputs, api_name="summarize_csv", concurrency_id=HEAVY,
    )
    run_example(batch_examples, summarize_csv, [batch.file, batch.text_col, batch.ref_col, method, model, sentences,
                                                ratio, max_new], batch.outputs, concurrency_id=HEAVY)
    wire_stop("summarize", batch, run_event)
    return {"method": method, "model": model, "text": text, "run": go_btn, "summary": summary, "rouge": rouge,
            **{f"batch_{k}": v for k, v in vars(batch).items()}}
