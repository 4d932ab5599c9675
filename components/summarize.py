"""Summarize tab: extractive (MiniLM centrality + lead bias + MMR) or abstractive (seq2seq model or instruct LM),
with hierarchical chunking for long documents and ROUGE against a reference; single text or a whole CSV.

Layout and event wiring only; the handlers are :class:`components.summarize_handlers.SummarizeHandlers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import gradio as gr

from components.backends_picker import generation_picker
from components.batch_ui import BatchWidgets, batch_section, wire_batch
from components.common import ErrorLine, examples, run_example
from components.i18n import t
from components.summarize_handlers import SummarizeHandlers, make_summarizer, rouge_metrics
from pipelines.context import HEAVY, AppContext
from pipelines.engines.remote import is_remote
from pipelines.generation.engines import Engine
from pipelines.tasks.embeddings import DEFAULT_ENCODER
from pipelines.tasks.lm_prompting import DEFAULT_LM
from pipelines.tasks.summarize import MAX_NEW_TOKENS, SummaryMethod

__all__ = ["build_summarize_tab", "make_summarizer", "rouge_metrics"]
METHOD_CHOICES = tuple((t(f"summarize.method_{m.value}"), m.value) for m in SummaryMethod)
DEFAULT_MODELS = MappingProxyType({SummaryMethod.EXTRACTIVE.value: DEFAULT_ENCODER,
                                   SummaryMethod.ABSTRACTIVE.value: DEFAULT_LM})
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


@dataclass
class Settings:
    method: gr.Radio
    model: gr.Dropdown
    sentences: gr.Slider
    ratio: gr.Slider
    max_new: gr.Slider
    engine: gr.Dropdown

    @property
    def inputs(self) -> list[gr.components.Component]:
        """The settings every endpoint takes (the engine comes last, after the endpoint's own inputs)."""
        return [self.method, self.model, self.sentences, self.ratio, self.max_new]


def engine_shown(method: str, model: str) -> gr.Dropdown:
    """The engine choice applies to a local instruct LM only: hidden for extractive summaries and remote models."""
    return gr.Dropdown(visible=method == SummaryMethod.ABSTRACTIVE.value and not is_remote(model))


@dataclass
class Single:
    text: gr.Textbox
    reference: gr.Textbox
    run: gr.Button
    examples: gr.Examples
    errors: ErrorLine
    summary: gr.Textbox
    rouge: gr.JSON
    note: gr.Markdown

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.summary, self.rouge, self.note]


def _settings(ctx: AppContext) -> Settings:
    with gr.Row():
        method = gr.Radio(list(METHOD_CHOICES), value=SummaryMethod.EXTRACTIVE.value, label=t("summarize.method"))
        model = generation_picker(ctx, ("any",), DEFAULT_ENCODER, elem_id="summarize-model")
    with gr.Row():
        sentences = gr.Slider(1, 20, value=3, step=1, label=t("summarize.sentences"))
        ratio = gr.Slider(0, 1, value=0, step=0.05, label=t("summarize.ratio"), info=t("summarize.ratio_info"))
        max_new = gr.Slider(16, MAX_NEW_TOKENS, value=128, step=16, label=t("summarize.max_new_tokens"))
        engine = gr.Dropdown([e.value for e in Engine], value=Engine.AUTO.value, label=t("summarize.engine"),
                             info=t("summarize.engine_info"), visible=False, elem_id="summarize-engine")
    return Settings(method, model, sentences, ratio, max_new, engine)


def _single(ctx: AppContext, settings: Settings) -> Single:
    text = gr.Textbox(lines=8, label=t("summarize.text"), elem_id="summarize-text")
    reference = gr.Textbox(lines=2, label=t("summarize.reference"), elem_id="summarize-reference")
    run = gr.Button(t("summarize.run"), variant="primary", elem_id="summarize-run")
    errors = ErrorLine(ctx, "summarize-errors")
    ex = examples(
        [[EN_EXAMPLE, "extractive", "minilm-l6", 2], [ZH_EXAMPLE, "extractive", "minilm-l6", 2],
         [EN_EXAMPLE, "abstractive", "smollm2-135m-instruct", 2]],
        [text, settings.method, settings.model, settings.sentences])
    summary = gr.Textbox(lines=5, label=t("summarize.summary"), interactive=False, elem_id="summarize-output")
    with gr.Row():
        rouge = gr.JSON(label=t("summarize.rouge"))
        note = gr.Markdown(elem_id="summarize-note")
    return Single(text, reference, run, ex, errors, summary, rouge, note)


def _wire_single(handlers: SummarizeHandlers, settings: Settings, single: Single) -> None:
    summarize = single.errors.guard(handlers.summarize)
    inputs = [single.text, *settings.inputs, single.reference]
    event = single.run.click(summarize, [*inputs, settings.engine], single.outputs, api_name="summarize",
                             concurrency_id=HEAVY)
    clicked = run_example(single.examples, summarize, inputs, single.outputs, concurrency_id=HEAVY)
    single.errors.watch(event, clicked)


def _wire_batch(ctx: AppContext, handlers: SummarizeHandlers, settings: Settings, batch: BatchWidgets,
                ex: gr.Examples) -> None:
    inputs = [batch.file, batch.text_col, batch.ref_col, *settings.inputs]
    wire_batch(ctx, "summarize", batch, handlers.summarize_csv, inputs, "summarize_csv", ex,
               extra_inputs=(settings.engine,))


def build_summarize_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Summarize tab inside the current Blocks context."""
    handlers = SummarizeHandlers(ctx)
    gr.Markdown(t("summarize.intro"))
    settings = _settings(ctx)
    with gr.Tab(t("summarize.single")):
        single = _single(ctx, settings)
    with gr.Tab(t("batch.title")):
        batch = batch_section(ctx, "summarize", "batch.reference_column")
        batch_examples = examples(
            [[str(EXAMPLES_DIR / "news_zh_gbk.csv"), "文本", "摘要", "extractive", "minilm-l6", 1]],
            [batch.file, batch.text_col, batch.ref_col, settings.method, settings.model, settings.sentences])
    settings.method.change(lambda m: gr.Dropdown(value=DEFAULT_MODELS.get(m, "")), settings.method, settings.model,
                           api_visibility="private", queue=False)
    gr.on([settings.method.change, settings.model.change], engine_shown, [settings.method, settings.model],
          settings.engine, api_visibility="private", queue=False, show_progress="hidden")
    _wire_single(handlers, settings, single)
    _wire_batch(ctx, handlers, settings, batch, batch_examples)
    return {"method": settings.method, "model": settings.model, "text": single.text, "run": single.run,
            "summary": single.summary, "rouge": single.rouge,
            **{f"batch_{k}": v for k, v in vars(batch).items() if k != "errors"}}
