"""Evaluate tab: score two to four models on a held-out table, with 95% intervals, paired tests, the rows that
changed and every prediction to download.

Layout and event wiring only; the handlers are :class:`components.evaluate_handlers.EvaluateHandlers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from components.backends_picker import generation_choices
from components.classify_corrections import build_corrections, wire_corrections
from components.common import ErrorLine, examples, run_example
from components.evaluate_handlers import MAX_PLOTS, EvaluateHandlers, changed_frame, confusion_figures, per_class_frame
from components.i18n import request_lang, t
from pipelines.context import HEAVY, AppContext
from pipelines.evaluation.spec import DEFAULT_RESAMPLES, DEFAULT_ROWS, MAX_MODELS, EvalTask

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"


@dataclass
class Inputs:
    file: gr.File
    input_col: gr.Dropdown
    target_col: gr.Dropdown
    task: gr.Radio
    models: gr.Dropdown
    max_rows: gr.Number
    max_new_tokens: gr.Number
    resamples: gr.Number
    seed: gr.Number

    @property
    def all(self) -> list[gr.components.Component]:
        return [self.file, self.input_col, self.target_col, self.models, self.task, self.max_rows,
                self.max_new_tokens, self.resamples, self.seed]


@dataclass
class Results:
    status: gr.Markdown
    summary: gr.Dataframe
    pairs: gr.Dataframe
    report: gr.JSON
    changed: gr.Dataframe
    files: gr.File
    result: gr.State
    compare_a: gr.Dropdown
    compare_b: gr.Dropdown
    per_class: gr.Dataframe
    plots: list[gr.Plot]

    @property
    def main(self) -> list[gr.components.Component]:
        return [self.status, self.summary, self.pairs, self.report, self.changed, self.files, self.result]


def _inputs(ctx: AppContext) -> Inputs:
    file = gr.File(label=t("evaluate.file"), file_types=[".csv", ".tsv", ".txt", ".jsonl"], type="filepath",
                   elem_id="evaluate-file")
    with gr.Row():
        input_col = gr.Dropdown([], label=t("evaluate.input_column"), allow_custom_value=True, elem_id="evaluate-input")
        target_col = gr.Dropdown([], label=t("evaluate.target_column"), allow_custom_value=True,
                                 elem_id="evaluate-target")
        task = gr.Radio([(t(f"evaluate.task_{v.value}"), v.value) for v in EvalTask], value=EvalTask.AUTO.value,
                        label=t("evaluate.task"), elem_id="evaluate-task")
    models = gr.Dropdown(generation_choices(ctx, ()), value=[], multiselect=True, max_choices=MAX_MODELS,
                         allow_custom_value=True, label=t("evaluate.models"), info=t("evaluate.models_info"),
                         elem_id="evaluate-models")

    def refresh(request: gr.Request) -> gr.Dropdown:
        return gr.Dropdown(choices=generation_choices(ctx, (), request))  # with login: the user's runs only

    models.focus(refresh, None, models, queue=False, show_progress="hidden", api_visibility="private")
    with gr.Accordion(t("evaluate.options"), open=False), gr.Row():
        max_rows = gr.Number(DEFAULT_ROWS, precision=0, minimum=1, label=t("evaluate.max_rows"),
                             info=t("evaluate.max_rows_info"))
        max_new = gr.Number(48, precision=0, minimum=1, maximum=512, label=t("evaluate.max_new_tokens"))
        resamples = gr.Number(DEFAULT_RESAMPLES, precision=0, minimum=0, label=t("evaluate.resamples"))
        seed = gr.Number(0, precision=0, label=t("evaluate.seed"))
    return Inputs(file, input_col, target_col, task, models, max_rows, max_new, resamples, seed)


def _results() -> Results:
    status = gr.Markdown(elem_id="evaluate-status")
    summary = gr.Dataframe(label=t("evaluate.summary"), interactive=False, wrap=True, visible=False,
                         elem_id="evaluate-summary")
    pairs = gr.Dataframe(label=t("evaluate.pairs"), interactive=False, wrap=True, visible=False,
                         elem_id="evaluate-pairs")
    with gr.Row():
        compare_a = gr.Dropdown([], label=t("evaluate.compare_a"), visible=False, elem_id="evaluate-compare-a")
        compare_b = gr.Dropdown([], label=t("evaluate.compare_b"), visible=False, elem_id="evaluate-compare-b")
    changed = gr.Dataframe(label=t("evaluate.changed"), interactive=False, wrap=True, max_height=420,
                           visible=False, elem_id="evaluate-changed")
    per_class = gr.Dataframe(label=t("evaluate.per_class"), interactive=False, visible=False,
                             elem_id="evaluate-per-class")
    with gr.Row():
        plots = [gr.Plot(label=t("evaluate.confusion"), visible=False, elem_id=f"evaluate-plot-{i}")
                 for i in range(MAX_PLOTS)]
    files = gr.File(label=t("evaluate.downloads"), file_count="multiple", interactive=False, elem_id="evaluate-files")
    report = gr.JSON(label=t("evaluate.report"), visible=False, elem_id="evaluate-report")  # for API callers
    return Results(status, summary, pairs, report, changed, files, gr.State(), compare_a, compare_b, per_class, plots)


def _details(result: object, request: gr.Request) -> tuple:
    """After a run: the compare pickers, the per-class table, one confusion matrix per model, and the result tables
    (hidden until there is something to show, so an empty table never shows placeholder headers; the pairs and
    the rows that changed need two models)."""
    lang = request_lang(request)
    models = result.report.get("models", []) if result is not None and result.report.get("rows") else []
    a, b = (models[0], models[1]) if len(models) > 1 else (None, None)
    figures = confusion_figures(result, lang)
    plots = [gr.Plot(value=f, visible=f is not None) for f in figures]
    per_class = per_class_frame(result, lang)
    changed = changed_frame(result, a, b, lang)
    pair = len(models) > 1
    return (gr.Dropdown(choices=models, value=a, visible=pair), gr.Dropdown(choices=models, value=b, visible=pair),
            gr.Dataframe(value=per_class, visible=not per_class.empty), *plots,
            gr.Dataframe(visible=bool(models)), gr.Dataframe(visible=pair), gr.Dataframe(visible=not changed.empty))


def _wire(ctx: AppContext, handlers: EvaluateHandlers, inputs: Inputs, results: Results, run: gr.Button,
          stop: gr.Button, errors: ErrorLine, ex: gr.Examples) -> None:
    def columns(file: str | None, request: gr.Request) -> tuple:
        from components.users import user_of

        cols, source, target, task = handlers.columns(file, user_of(ctx, request))
        return (gr.Dropdown(choices=cols, value=source), gr.Dropdown(choices=["", *cols], value=target or ""),
                gr.Radio(value=task))

    upload = inputs.file.upload(errors.guard(columns), inputs.file, [inputs.input_col, inputs.target_col, inputs.task],
                                api_visibility="private")
    evaluate = errors.guard(handlers.evaluate)
    details = [results.compare_a, results.compare_b, results.per_class, *results.plots, results.summary, results.pairs,
               results.changed]
    event = run.click(evaluate, inputs.all, results.main, api_name="evaluate", concurrency_id=HEAVY)
    event.then(_details, results.result, details, api_visibility="private", queue=False)
    clicked = run_example(ex, evaluate, inputs.all, results.main, concurrency_id=HEAVY)
    clicked.then(_details, results.result, details, api_visibility="private", queue=False)
    errors.watch(upload, event, clicked)
    stopped = stop.click(handlers.stop, None, results.main, cancels=[event, clicked], api_visibility="private")
    stopped.then(_details, results.result, details, api_visibility="private", queue=False)

    def compare(result: object, a: str | None, b: str | None, request: gr.Request) -> object:
        frame = changed_frame(result, a, b, request_lang(request))
        return gr.Dataframe(value=frame, visible=not frame.empty)

    for picker in (results.compare_a, results.compare_b):
        picker.input(compare, [results.result, results.compare_a, results.compare_b], results.changed,
                     api_visibility="private", queue=False)


def build_evaluate_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Evaluate tab inside the current Blocks context."""
    handlers = EvaluateHandlers(ctx)
    gr.Markdown(t("evaluate.intro"))
    inputs = _inputs(ctx)
    with gr.Row():
        run = gr.Button(t("evaluate.run"), variant="primary", elem_id="evaluate-run")
        stop = gr.Button(t("evaluate.stop"), variant="stop", elem_id="evaluate-stop")
    errors = ErrorLine(ctx, "evaluate-errors")
    ex = examples([[str(EXAMPLES_DIR / "sentiment.csv"), "text", "label", ["minilm-l6"], "classification"],
                   [str(EXAMPLES_DIR / "instructions.csv"), "prompt", "response", ["smollm2-135m-instruct"],
                    "generation"]],
                  [inputs.file, inputs.input_col, inputs.target_col, inputs.models, inputs.task])
    results = _results()
    corrections = build_corrections(ctx, "evaluate-corrections")  # classification: fix wrong rows, retrain
    _wire(ctx, handlers, inputs, results, run, stop, errors, ex)
    wire_corrections(ctx, corrections, results.files, api_name=None)
    return {"file": inputs.file, "input_column": inputs.input_col, "target_column": inputs.target_col,
            "task": inputs.task, "models": inputs.models, "run": run, "stop": stop, "status": results.status,
            "summary": results.summary, "pairs": results.pairs, "changed": results.changed, "files": results.files,
            "report": results.report, "per_class": results.per_class, "compare_a": results.compare_a,
            "compare_b": results.compare_b}
