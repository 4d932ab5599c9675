"""Extract tab: named entities, question answering, fields as JSON and keyphrases; single text or a whole CSV."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pandas as pd

from components.batch_ui import BatchSpec, batch_section, run_batch, wire_stop
from components.common import (
    embedded_label,
    examples,
    model_choices,
    model_picker,
    progress_reporter,
    run_example,
    ui_errors,
)
from components.i18n import localize, t
from pipelines.context import HEAVY, AppContext
from pipelines.errors import InputError
from pipelines.tasks.embeddings import get_encoder
from pipelines.tasks.extract import DEFAULT_NER, highlight_value, keyphrases, make_entity_extractor
from pipelines.tasks.fields import extract_fields, parse_fields
from pipelines.tasks.lm_prompting import DEFAULT_LM
from pipelines.tasks.qa import answer_question, qa_highlight
from pipelines.tasks.sentences import cap_text

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"

ENTITY_COLUMNS = ["text", "label", "start", "end", "score"]
MODES = [(t("extract.entities"), "entities"), (t("extract.keyphrases"), "keyphrases"),
         (t("extract.fields"), "fields"), (t("extract.qa"), "answer")]
EXAMPLE = ("Apple opened a new office in Berlin on 3 March 2024. Tim Cook said the team will hire 200 engineers "
           "in Germany by next year.")
EXAMPLE_2 = ("The European Space Agency will launch the Ariel telescope from French Guiana in 2029 to study the "
             "atmospheres of exoplanets.")


def _entity_choices(ctx: AppContext) -> list[tuple[object, str]]:
    return [(embedded_label("spacy-en-sm"), DEFAULT_NER), *model_choices(ctx, ("token-cls",))]


def _entity_picker(ctx: AppContext) -> gr.Dropdown:
    picker = gr.Dropdown(_entity_choices(ctx), value=DEFAULT_NER, label=t("common.model"),
                         info=t("extract.ner_model_info"), allow_custom_value=True, filterable=True)
    picker.focus(lambda: gr.Dropdown(choices=_entity_choices(ctx)), None, picker, queue=False,
                 show_progress="hidden", api_visibility="private")
    return picker


def _fields_table(result: dict) -> pd.DataFrame:
    rows = [[name, "" if value is None else str(value)] for name, value in result["fields"].items()]
    return pd.DataFrame(rows, columns=["field", "value"])


def _row_processor(ctx: AppContext, mode: str, model: str, fields: str, question: str):
    """(process(texts) -> rows, batch size) for one extract_csv mode."""
    max_chars = ctx.config.max_input_chars
    if mode == "entities":
        extractor = make_entity_extractor(ctx.manager, model)

        def entities(texts: list[str]) -> list[dict]:
            found = extractor.extract_many([x[:max_chars] for x in texts])
            return [{"entities": "; ".join(f"{e['text']} ({e['label']})" for e in ents),
                     "entities_json": json.dumps(ents, ensure_ascii=False)} for ents in found]

        return entities, extractor.batch_size
    if mode == "keyphrases":
        encoder = get_encoder(ctx.manager)
        return (lambda texts: [{"keyphrases": "; ".join(k["phrase"] for k in keyphrases(encoder, x[:max_chars]))
                                if x.strip() else ""} for x in texts]), 8
    if mode == "fields":
        names = parse_fields(fields)
        lm = ctx.manager.load((model or "").strip() or DEFAULT_LM, "causal-lm")

        def one(x: str) -> dict:
            if not x.strip():
                return {**dict.fromkeys(names, ""), "problems": "empty text"}
            result = extract_fields(lm, x[:max_chars], fields)
            return {**result["fields"], "problems": " ".join(result["problems"])}

        return (lambda texts: [one(x) for x in texts]), 1
    if mode == "answer":
        if not (question or "").strip():
            raise InputError("Type the question to ask of every row.")

        def ask(x: str) -> dict:
            if not x.strip():
                return {"answer": "", "evidence": ""}
            result = answer_question(ctx.manager, model, question, x[:max_chars])
            return {"answer": result["answer"], "evidence": result.get("evidence", "")}

        return (lambda texts: [ask(x) for x in texts]), 1
    raise InputError("Choose what to extract: entities, keyphrases, fields or answer.")


def build_extract_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Extract tab inside the current Blocks context."""
    gr.Markdown(t("extract.intro"))
    with gr.Tab(t("extract.entities")):
        ent_model = _entity_picker(ctx)
        ent_text = gr.Textbox(lines=4, value=EXAMPLE, label=t("extract.text"), elem_id="extract-entities-text")
        ent_btn = gr.Button(t("extract.find_entities"), variant="primary", elem_id="extract-entities-run")
        ent_examples = examples([[EXAMPLE], [EXAMPLE_2]], [ent_text])
        ent_highlight = gr.HighlightedText(label=t("extract.entities"), elem_id="extract-entities-output",
                                           show_legend=True, combine_adjacent=False)
        ent_table = gr.Dataframe(headers=ENTITY_COLUMNS, label=t("extract.entity_table"), interactive=False)
    with gr.Tab(t("extract.qa")):
        qa_model = model_picker(ctx, kinds=("qa", "causal-lm"), value=DEFAULT_LM)
        qa_context = gr.Textbox(lines=5, value=EXAMPLE, label=t("extract.context"))
        qa_question = gr.Textbox(value="Where did Apple open an office?", label=t("extract.question"))
        qa_btn = gr.Button(t("extract.answer"), variant="primary", elem_id="extract-qa-run")
        qa_examples = examples([[EXAMPLE, "Who said the team will hire engineers?"],
                                [EXAMPLE_2, "Where will the telescope be launched from?"]], [qa_context, qa_question])
        qa_answer = gr.Textbox(label=t("extract.answer_out"), interactive=False, elem_id="extract-qa-answer")
        qa_highlight_out = gr.HighlightedText(label=t("extract.evidence"), show_legend=True)
        qa_details = gr.JSON(label=t("extract.details"))
    with gr.Tab(t("extract.fields")):
        f_model = model_picker(ctx, kinds=("causal-lm",), value=DEFAULT_LM)
        f_text = gr.Textbox(lines=4, label=t("extract.text"),
                            value="Order A-1042 placed on 3 March 2024: the blue kettle arrived broken and leaks.")
        f_names = gr.Textbox(value="product, order_id, date, complaint", label=t("extract.field_names"))
        f_btn = gr.Button(t("extract.extract_fields"), variant="primary", elem_id="extract-fields-run")
        f_examples = examples([["Invoice 2024-117 from Acme Ltd, due 30 April 2024, total 1,250 EUR.",
                                "company, invoice_number, due_date, total"]], [f_text, f_names])
        f_table = gr.Dataframe(headers=["field", "value"], label=t("extract.fields"), interactive=False)
        f_notes = gr.Markdown(elem_id="extract-fields-notes")
        f_raw = gr.Textbox(label=t("extract.raw_reply"), interactive=False, lines=3)
    with gr.Tab(t("extract.keyphrases")):
        k_text = gr.Textbox(lines=5, value=EXAMPLE, label=t("extract.text"))
        k_top = gr.Slider(1, 20, value=8, step=1, label=t("extract.top_k"))
        k_btn = gr.Button(t("extract.find_keyphrases"), variant="primary")
        k_examples = examples([[EXAMPLE, 5], [EXAMPLE_2, 5]], [k_text, k_top])
        k_table = gr.Dataframe(headers=["phrase", "score"], label=t("extract.keyphrases"), interactive=False)
    with gr.Tab(t("batch.title")):
        with gr.Row():
            b_mode = gr.Radio(MODES, value="entities", label=t("extract.mode"))
            b_model = gr.Textbox(value="", label=t("extract.batch_model"), info=t("extract.batch_model_info"))
        with gr.Row():
            b_fields = gr.Textbox(value="product, order_id, date", label=t("extract.field_names"))
            b_question = gr.Textbox(value="", label=t("extract.question"))
        batch = batch_section("extract", None)
        batch_examples = examples([[str(EXAMPLES_DIR / "sentiment.csv"), "text", "keyphrases"]],
                                  [batch.file, batch.text_col, b_mode])

    @ui_errors
    def extract_entities(text: str, model: str, progress: gr.Progress = gr.Progress()) -> tuple:
        """Named entities of ``text`` with spaCy (default ``spacy-en-sm``) or a token-classification model.

        Returns the HighlightedText value ``{text, entities}`` and a table (text, label, start, end, score).
        """
        if not (text or "").strip():
            raise InputError("Type or paste a text first.")
        text, cut = cap_text(text, ctx.config.max_input_chars)
        if cut:
            gr.Warning(localize(cut))
        ents = make_entity_extractor(ctx.manager, model, progress_reporter(progress)).extract_many([text])[0]
        table = pd.DataFrame([[e[c] for c in ENTITY_COLUMNS] for e in ents], columns=ENTITY_COLUMNS)
        return highlight_value(text, ents), table

    ent_btn.click(extract_entities, [ent_text, ent_model], [ent_highlight, ent_table],
                  api_name="extract_entities", concurrency_id=HEAVY)
    run_example(ent_examples, extract_entities, [ent_text, ent_model], [ent_highlight, ent_table],
                concurrency_id=HEAVY)

    @ui_errors
    def answer(question: str, context: str, model: str, progress: gr.Progress = gr.Progress()) -> tuple:
        """Answer ``question`` from ``context``: span extraction with a QA model, or the LM's answer plus the
        supporting sentence (embedding similarity). Returns the answer, a highlight value and details."""
        context, cut = cap_text(context, ctx.config.max_input_chars)
        result = answer_question(ctx.manager, model, question, context, progress=progress_reporter(progress))
        if cut:
            result["note"] = localize(cut)
        return result["answer"], qa_highlight(context, result), result

    qa_btn.click(answer, [qa_question, qa_context, qa_model], [qa_answer, qa_highlight_out, qa_details],
                 api_name="answer", concurrency_id=HEAVY)
    run_example(qa_examples, answer, [qa_question, qa_context, qa_model], [qa_answer, qa_highlight_out, qa_details],
                concurrency_id=HEAVY)

    @ui_errors
    def fields_handler(text: str, fields: str, model: str, progress: gr.Progress = gr.Progress()) -> tuple:
        """The named fields of ``text`` as JSON from the LM, parsed, repaired if needed and validated.

        Returns a (field, value) table, notes on repairs/missing/extra keys, and the raw reply.
        """
        text, cut = cap_text(text, ctx.config.max_input_chars)
        lm = ctx.manager.load((model or "").strip() or DEFAULT_LM, "causal-lm", progress=progress_reporter(progress))
        result = extract_fields(lm, text, fields)
        problems = result["problems"] + ([cut] if cut else [])
        notes = "\n".join(f"- {localize(p)}" for p in problems) or localize("All fields parsed from valid JSON.")
        return _fields_table(result), notes, result["raw"]

    f_btn.click(fields_handler, [f_text, f_names, f_model], [f_table, f_notes, f_raw],
                api_name="extract_fields", concurrency_id=HEAVY)
    run_example(f_examples, fields_handler, [f_text, f_names, f_model], [f_table, f_notes, f_raw],
                concurrency_id=HEAVY)

    @ui_errors
    def keyphrases_handler(text: str, top_k: float) -> pd.DataFrame:
        """Keyphrases of ``text``: candidate n-grams ranked against the document embedding, diversified (MMR)."""
        text, cut = cap_text(text, ctx.config.max_input_chars)
        if cut:
            gr.Warning(localize(cut))
        found = keyphrases(get_encoder(ctx.manager), text, int(top_k or 8))
        return pd.DataFrame([[k["phrase"], k["score"]] for k in found], columns=["phrase", "score"])

    k_btn.click(keyphrases_handler, [k_text, k_top], k_table, api_name="extract_keyphrases", concurrency_id=HEAVY)
    run_example(k_examples, keyphrases_handler, [k_text, k_top], k_table, concurrency_id=HEAVY)

    @ui_errors
    def extract_csv(file: str, text_column: str, mode: str, model: str, fields: str, question: str,
                    request: gr.Request, progress: gr.Progress = gr.Progress()):
        """Extract from every row of a CSV/TSV/JSONL file. mode: entities | keyphrases | fields | answer.

        Yields (status, preview table, [extracted.csv, extracted.json], "", None).
        """

        def make_spec() -> BatchSpec:
            process, size = _row_processor(ctx, mode, model, fields, question)
            return BatchSpec(process, size, None, stem=f"extracted-{mode}")

        yield from run_batch(ctx, "extract", file, text_column, None, make_spec, request, progress)

    run_event = batch.run.click(extract_csv, [batch.file, batch.text_col, b_mode, b_model, b_fields, b_question],
                                batch.outputs, api_name="extract_csv", concurrency_id=HEAVY)
    run_example(batch_examples, extract_csv, [batch.file, batch.text_col, b_mode, b_model, b_fields, b_question],
                batch.outputs, concurrency_id=HEAVY)
    wire_stop("extract", batch, run_event)
    return {"entities_text": ent_text, "entities_model": ent_model, "entities_run": ent_btn,
            "entities": ent_highlight, "entity_table": ent_table, "qa_answer": qa_answer, "fields_table": f_table,
            "keyphrases": k_table, **{f"batch_{k}": v for k, v in vars(batch).items()}}
