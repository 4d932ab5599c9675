"""Extract tab (layout and wiring only): named entities, question answering, fields, keyphrases, CSV batch.

The actions are :class:`components.extract_handlers.ExtractHandlers` methods; the work is in ``pipelines/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from components.backends_picker import generation_choices, generation_picker
from components.common import ErrorLine, embedded_label, examples, model_choices, progress_reporter
from components.common import run_example as on_example
from components.extract_handlers import DEFAULT_NER, ExtractHandlers
from components.extract_tables import empty_tables
from components.i18n import request_lang, t
from pipelines.context import HEAVY, AppContext
from pipelines.engines.remote import is_remote
from pipelines.generation.engines import Engine

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
DEFAULT_LM = "smollm2-135m-instruct"
MODES = ((t("extract.entities"), "entities"), (t("extract.keyphrases"), "keyphrases"),
         (t("extract.fields"), "fields"), (t("extract.qa"), "answer"))
EXAMPLE = ("Apple opened a new office in Berlin on 3 March 2024. Tim Cook said the team will hire 200 engineers "
           "in Germany by next year.")
EXAMPLE_2 = ("The European Space Agency will launch the Ariel telescope from French Guiana in 2029 to study the "
             "atmospheres of exoplanets.")
INVOICE = "Invoice 2024-117 from Acme Ltd, due 30 April 2024, total 1,250 EUR."
ORDER = "Order A-1042 placed on 3 March 2024: the blue kettle arrived broken and leaks."
Widgets = dict[str, gr.components.Component]


def _entity_choices(ctx: AppContext, request: gr.Request | None = None) -> list[tuple[object, str]]:
    """spaCy and the token-classification models (with login: the request user's runs only)."""
    return [(embedded_label("spacy-en-sm"), DEFAULT_NER), *model_choices(ctx, ("token-cls",), request)]


def _entity_picker(ctx: AppContext) -> gr.Dropdown:
    picker = gr.Dropdown(_entity_choices(ctx), value=DEFAULT_NER, label=t("common.model"),
                         info=t("extract.ner_model_info"), allow_custom_value=True, filterable=True)

    def refresh(request: gr.Request) -> gr.Dropdown:
        return gr.Dropdown(choices=_entity_choices(ctx, request))

    picker.focus(refresh, None, picker, queue=False, show_progress="hidden", api_visibility="private")
    return picker


def _engine_picker(model: gr.Dropdown | gr.Textbox, elem_id: str) -> gr.Dropdown:
    """The engine of a local instruct LM (auto, transformers, llama.cpp); hidden while ``model`` is remote."""
    engine = gr.Dropdown([e.value for e in Engine], value=Engine.AUTO.value, label=t("extract.engine"),
                         info=t("extract.engine_info"), elem_id=elem_id)
    model.change(lambda ref: gr.Dropdown(visible=not is_remote(ref)), model, engine, queue=False,
                 show_progress="hidden", api_visibility="private")
    return engine


def _batch_picker(ctx: AppContext) -> gr.Dropdown:
    """The batch's model: empty (each mode's default), a local model, or a remote one (fields and answers)."""
    kinds = ("token-cls", "qa", "causal-lm")
    picker = gr.Dropdown(generation_choices(ctx, kinds), value="", label=t("extract.batch_model"),
                         info=t("extract.batch_model_info"), allow_custom_value=True, filterable=True,
                         elem_id="extract-batch-model")

    def refresh(request: gr.Request) -> gr.Dropdown:
        return gr.Dropdown(choices=generation_choices(ctx, kinds, request))  # with login: the user's runs

    picker.focus(refresh, None, picker, queue=False, show_progress="hidden", api_visibility="private")
    return picker


def _wire(errors: ErrorLine, trigger: Any, ex: gr.Examples, fn: Any, inputs: list, outputs: list,
          api_name: str) -> Any:
    """Button and example run ``fn`` (guarded: errors go to the status line, outputs keep their values)."""
    guarded = errors.guard(fn)
    event = trigger.click(guarded, inputs, outputs, api_name=api_name, concurrency_id=HEAVY)
    errors.watch(event, on_example(ex, guarded, inputs, outputs, concurrency_id=HEAVY))
    return event


def _warn(note: str) -> None:
    if note:
        gr.Warning(note)


def _entities_tab(ctx: AppContext, handlers: ExtractHandlers) -> Widgets:
    model = _entity_picker(ctx)
    text = gr.Textbox(lines=4, value=EXAMPLE, label=t("extract.text"), elem_id="extract-entities-text")
    run = gr.Button(t("extract.find_entities"), variant="primary", elem_id="extract-entities-run")
    errors = ErrorLine(ctx, "extract-entities-errors")
    ex = examples([[EXAMPLE], [EXAMPLE_2]], [text])
    highlight = gr.HighlightedText(label=t("extract.entities"), elem_id="extract-entities-output",
                                   show_legend=True, combine_adjacent=False)
    table = gr.Dataframe(label=t("extract.entity_table"), interactive=False, elem_id="extract-entities-table")

    def extract_entities(text: str, model: str, progress: gr.Progress = gr.Progress()) -> tuple:
        """Named entities of ``text`` with spaCy (default ``spacy-en-sm``) or a token-classification model.

        Returns the HighlightedText value and a table (text, label, start, end, meaning[, score]).
        """
        value, found, note = handlers.entities(text, model, progress=progress_reporter(progress))
        _warn(note)
        return value, found

    _wire(errors, run, ex, extract_entities, [text, model], [highlight, table], "extract_entities")
    return {"entities_text": text, "entities_model": model, "entities_run": run, "entities": highlight,
            "entity_table": table, "entities_errors": errors.box}


def _qa_tab(ctx: AppContext, handlers: ExtractHandlers) -> Widgets:
    with gr.Row():
        model = generation_picker(ctx, ("qa", "causal-lm"), DEFAULT_LM, elem_id="extract-qa-model")
        engine = _engine_picker(model, "extract-qa-engine")
    context = gr.Textbox(lines=5, value=EXAMPLE, label=t("extract.context"), elem_id="extract-qa-context")
    question = gr.Textbox(value="Where did Apple open an office?", label=t("extract.question"),
                          elem_id="extract-qa-question")
    run = gr.Button(t("extract.answer"), variant="primary", elem_id="extract-qa-run")
    errors = ErrorLine(ctx, "extract-qa-errors")
    ex = examples([[EXAMPLE, "Who said the team will hire engineers?"],
                   [EXAMPLE_2, "Where will the telescope be launched from?"]], [context, question])
    answer_box = gr.Textbox(label=t("extract.answer_out"), interactive=False, elem_id="extract-qa-answer")
    note = gr.Markdown(elem_id="extract-qa-note")
    highlight = gr.HighlightedText(label=t("extract.evidence"), show_legend=True, elem_id="extract-qa-evidence")
    details = gr.JSON(label=t("extract.details"))

    def answer(question: str, context: str, model: str, engine: str = "auto",
               progress: gr.Progress = gr.Progress()) -> tuple:
        """Answer ``question`` from ``context``: a span of the context (a QA model's span, or the candidate span an
        LM -- local or ``remote:<endpoint>/<model>`` -- supports best), or empty with a note. ``engine`` runs a
        local instruct LM (auto, transformers, llama.cpp). Returns the answer, the evidence highlight and details."""
        return handlers.answer(question, context, model, progress=progress_reporter(progress), engine=engine)

    event = _wire(errors, run, ex, answer, [question, context, model, engine], [answer_box, highlight, details],
                  "answer")
    show = {"fn": lambda d: (d or {}).get("note") or "", "inputs": details, "outputs": note, "queue": False,
            "show_progress": "hidden", "api_visibility": "private"}
    event.success(**show)
    details.change(**show)
    return {"qa_context": context, "qa_question": question, "qa_run": run, "qa_answer": answer_box,
            "qa_note": note, "qa_evidence": highlight, "qa_details": details, "qa_errors": errors.box}


def _fields_tab(ctx: AppContext, handlers: ExtractHandlers) -> Widgets:
    with gr.Row():
        model = generation_picker(ctx, ("causal-lm",), DEFAULT_LM, elem_id="extract-fields-model")
        engine = _engine_picker(model, "extract-fields-engine")
    text = gr.Textbox(lines=4, label=t("extract.text"), value=ORDER, elem_id="extract-fields-text")
    names = gr.Textbox(value="product, order_id, date, complaint", label=t("extract.field_names"),
                       elem_id="extract-fields-names")
    run = gr.Button(t("extract.extract_fields"), variant="primary", elem_id="extract-fields-run")
    errors = ErrorLine(ctx, "extract-fields-errors")
    ex = examples([[INVOICE, "company, invoice_number, due_date, total"]], [text, names])
    table = gr.Dataframe(label=t("extract.fields"), interactive=False, elem_id="extract-fields-table")
    notes = gr.Markdown(elem_id="extract-fields-notes")
    raw = gr.Textbox(label=t("extract.raw_reply"), interactive=False, lines=3)

    def fields_handler(text: str, fields: str, model: str, engine: str = "auto",
                       progress: gr.Progress = gr.Progress()) -> tuple:
        """The named fields of ``text``: each value is a span of the text (the LM's JSON value when the text has
        it, else the span of the field's type that fits best) or is reported as missing / not supported. The LM
        may be remote (``remote:<endpoint>/<model>``); ``engine`` runs a local one (auto, transformers, llama.cpp).

        Returns a (field, value, check) table, notes, and the LM's raw reply.
        """
        return handlers.fields(text, fields, model, progress=progress_reporter(progress), engine=engine)

    _wire(errors, run, ex, fields_handler, [text, names, model, engine], [table, notes, raw], "extract_fields")
    return {"fields_text": text, "fields_names": names, "fields_run": run, "fields_table": table,
            "fields_notes": notes, "fields_errors": errors.box}


def _keyphrases_tab(ctx: AppContext, handlers: ExtractHandlers) -> Widgets:
    text = gr.Textbox(lines=5, value=EXAMPLE, label=t("extract.text"), elem_id="extract-keyphrases-text")
    top = gr.Slider(1, 20, value=8, step=1, label=t("extract.top_k"))
    run = gr.Button(t("extract.find_keyphrases"), variant="primary", elem_id="extract-keyphrases-run")
    errors = ErrorLine(ctx, "extract-keyphrases-errors")
    ex = examples([[EXAMPLE, 5], [EXAMPLE_2, 5]], [text, top])
    table = gr.Dataframe(label=t("extract.keyphrases"), interactive=False, elem_id="extract-keyphrases-table")

    def keyphrases_handler(text: str, top_k: float) -> Any:
        """Keyphrases of ``text``: noun chunks and entities ranked against the text embedding, diversified (MMR)."""
        found, note = handlers.keyphrases(text, top_k)
        _warn(note)
        return found

    _wire(errors, run, ex, keyphrases_handler, [text, top], [table], "extract_keyphrases")
    return {"keyphrases_text": text, "keyphrases_run": run, "keyphrases": table, "keyphrases_errors": errors.box}


def _batch_tab(ctx: AppContext, handlers: ExtractHandlers) -> Widgets:
    from components.batch_ui import batch_section, wire_batch

    with gr.Row():
        mode = gr.Radio(list(MODES), value="entities", label=t("extract.mode"), elem_id="extract-batch-mode")
        model = _batch_picker(ctx)
        engine = _engine_picker(model, "extract-batch-engine")
    with gr.Row():
        fields = gr.Textbox(value="product, order_id, date", label=t("extract.field_names"))
        question = gr.Textbox(value="", label=t("extract.question"))
    batch = batch_section(ctx, "extract", None)
    ex = examples([[str(EXAMPLES_DIR / "sentiment.csv"), "text", "keyphrases"]], [batch.file, batch.text_col, mode])

    def extract_csv(file: str, text_column: str, mode: str, model: str, fields: str, question: str,
                    engine: str = "auto", request: gr.Request = None, progress: gr.Progress = gr.Progress()):
        """Extract from every row of a CSV/TSV/JSONL file. mode: entities | keyphrases | fields | answer. Fields
        and answers may use a remote LM (several rows in flight); ``engine`` runs a local one.

        Yields (status, preview table, [extracted.csv, extracted.json], "", None).
        """
        yield from handlers.csv(file, text_column, mode, model, fields, question, request, progress, engine)

    inputs = [batch.file, batch.text_col, mode, model, fields, question]
    wire_batch(ctx, "extract", batch, extract_csv, inputs, "extract_csv", ex, extra_inputs=(engine,))
    parts = {f"batch_{k}": v for k, v in vars(batch).items() if isinstance(v, gr.components.Component)}
    return {"batch_mode": mode, "batch_errors": batch.errors.box, **parts}


def build_extract_tab(ctx: AppContext) -> Widgets:
    """Build the Extract tab inside the current Blocks context."""
    handlers = ExtractHandlers(ctx)
    gr.Markdown(t("extract.intro"))
    widgets: Widgets = {}
    for title, part in (("extract.entities", _entities_tab), ("extract.qa", _qa_tab),
                        ("extract.fields", _fields_tab), ("extract.keyphrases", _keyphrases_tab),
                        ("batch.title", _batch_tab)):
        with gr.Tab(t(title)):
            widgets |= part(ctx, handlers)

    def headers(request: gr.Request) -> tuple:
        """The empty tables' headers in the page's language (they are built on the server)."""
        return empty_tables(request_lang(request))

    gr.on(None, headers, None, [widgets["entity_table"], widgets["fields_table"], widgets["keyphrases"]],
          queue=False, show_progress="hidden", api_visibility="private")
    return widgets
