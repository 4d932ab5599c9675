"""Fine-tune tab: upload a table, map columns, train a LoRA adapter live, inspect results, manage runs."""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

import gradio as gr

from components.common import examples, ui_errors
from components.i18n import localize, t
from pipelines.context import HEAVY, AppContext
from pipelines.errors import InputError
from pipelines.models.embedded import EMBEDDED
from pipelines.tables import Table
from pipelines.training import view
from pipelines.training.data import ColumnMapping, guess_mapping, prepare
from pipelines.training.job import TrainingJob, base_location
from pipelines.training.settings import DEFAULT_MODELS, TrainSettings, preset
from pipelines.training.spec import JobSpec
from pipelines.training.store import delete_run, merge_run, zip_run

TRAINING = "training"  # own concurrency id: training never queues behind (or blocks) inference
PREVIEW_ROWS = 20
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
REFRESH_S = 0.7
# Settings shown as number fields, in UI order (target modules and checkpointing are separate widgets).
NUMBER_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "learning_rate", "epochs", "batch_size", "grad_accum",
                 "max_length", "warmup_ratio", "weight_decay", "val_split", "seed")
INT_FIELDS = {f.name for f in fields(TrainSettings) if f.type == "int"}


def _read(ctx: AppContext, path: str | None) -> Table:
    if not path:
        raise InputError("Upload a CSV, TSV or JSONL file first.")
    return ctx.read_upload(path)


def _mapping(task: str, text: str | None, label: str | None, prompt: str | None, response: str | None) -> ColumnMapping:
    if task == "classification":
        return ColumnMapping(text=text or None, label=label or None)
    if prompt or response:
        return ColumnMapping(prompt=prompt or None, response=response or None)
    return ColumnMapping(text=text or None)


def _base_choices() -> list[str]:
    return [m.name for m in EMBEDDED.values() if m.fmt != "spacy"]


def build_finetune_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Fine-tune tab inside the current Blocks context."""
    jobs: dict[str, TrainingJob] = {}  # the latest job of each session, so Stop finds its own run

    gr.Markdown(t("finetune.intro"))
    table_state = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label=t("finetune.file"), file_types=[".csv", ".tsv", ".jsonl", ".txt"],
                             type="filepath", elem_id="ft-file")
            task = gr.Radio([(t("finetune.task_cls"), "classification"), (t("finetune.task_lm"), "causal-lm")],
                            value="classification", label=t("finetune.task"), elem_id="ft-task")
            base = gr.Dropdown(_base_choices(), value=DEFAULT_MODELS["classification"], label=t("finetune.base"),
                               info=t("finetune.base_info"), allow_custom_value=True, filterable=True,
                               elem_id="ft-base")
            with gr.Row():
                text_col = gr.Dropdown([], label=t("finetune.col_text"), allow_custom_value=True)
                label_col = gr.Dropdown([], label=t("finetune.col_label"), allow_custom_value=True)
            with gr.Row(visible=False) as lm_cols:
                prompt_col = gr.Dropdown([], label=t("finetune.col_prompt"), allow_custom_value=True)
                response_col = gr.Dropdown([], label=t("finetune.col_response"), allow_custom_value=True)
            run_name = gr.Textbox(label=t("finetune.name"), max_length=80)
            # Clicking one fills the form; the upload's change event shows the preview and data report.
            examples([[str(EXAMPLES_DIR / "sentiment.csv"), "classification", "minilm-l6", "sentiment"],
                      [str(EXAMPLES_DIR / "instructions.csv"), "causal-lm", "smollm2-135m-instruct", "instructions"]],
                     [upload, task, base, run_name])
        with gr.Column(scale=2):
            preview = gr.Dataframe(label=t("finetune.preview"), interactive=False, max_height=300)
            report = gr.Markdown(elem_id="ft-report")
    with gr.Accordion(t("finetune.settings"), open=False, elem_id="ft-settings"):
        preset_name = gr.Radio([(t("finetune.quick"), "quick"), (t("finetune.balanced"), "balanced"),
                                (t("finetune.thorough"), "thorough")], value="quick", label=t("finetune.preset"))
        start_values = preset("quick")
        numbers: dict[str, gr.Number] = {}
        for row in (NUMBER_FIELDS[:4], NUMBER_FIELDS[4:8], NUMBER_FIELDS[8:]):
            with gr.Row():
                for name in row:
                    numbers[name] = gr.Number(getattr(start_values, name), label=t(f"finetune.s.{name}"),
                                              precision=0 if name in INT_FIELDS else None, minimum=0)
        with gr.Row():
            targets = gr.Textbox("auto", label=t("finetune.s.target_modules"), info=t("finetune.targets_info"))
            checkpointing = gr.Checkbox(False, label=t("finetune.s.gradient_checkpointing"))
    spec_box = gr.Textbox(visible=False)
    with gr.Row():
        start_btn = gr.Button(t("finetune.start"), variant="primary", elem_id="ft-start")
        stop_btn = gr.Button(t("finetune.stop"), variant="stop", elem_id="ft-stop")
    run_id = gr.Textbox(label=t("finetune.run_id"), interactive=False, elem_id="ft-run-id")
    progress = gr.HTML(view.progress_html(None), elem_id="ft-progress")
    loss_plot = gr.Plot(label=t("finetune.loss"), elem_id="ft-loss")
    log_box = gr.Textbox(label=t("finetune.log"), lines=8, max_lines=8, autoscroll=True, interactive=False,
                         elem_id="ft-log")
    results_md = gr.Markdown(elem_id="ft-results")
    with gr.Row():
        confusion = gr.Plot(label=t("finetune.confusion"), elem_id="ft-confusion")
        results_table = gr.Dataframe(label=t("finetune.details"), interactive=False, wrap=True)
    gr.Markdown(t("finetune.runs_intro"))
    runs_table = gr.Dataframe(view.run_rows(ctx.runs.list(None)), headers=view.RUN_COLUMNS,
                              label=t("finetune.runs"), interactive=False, elem_id="ft-runs")
    with gr.Row():
        run_pick = gr.Dropdown([r.id for r in ctx.runs.list(None)], label=t("finetune.run_pick"),
                               allow_custom_value=True, scale=2)
        refresh_btn = gr.Button(t("finetune.refresh"))
        download_btn = gr.Button(t("finetune.download"))
        merge_btn = gr.Button(t("finetune.merge"))
        delete_btn = gr.Button(t("finetune.delete"), variant="stop")
    action_md = gr.Markdown(elem_id="ft-action")
    zip_file = gr.File(label=t("finetune.zip"), interactive=False)

    # ---- data ---------------------------------------------------------------------
    def describe(table: Table | None, task_name: str, *cols: str | None) -> str:
        if table is None:
            return ""
        try:
            return prepare(table, task_name, _mapping(task_name, *cols)).report.to_markdown()
        except InputError as exc:
            return f"⚠️ {localize(str(exc))}"

    @ui_errors
    def on_upload(path: str | None, task_name: str) -> tuple:
        if not path:
            return None, None, *(gr.Dropdown(choices=[], value=None) for _ in range(4)), ""
        table = _read(ctx, path)
        guess = guess_mapping(table.columns, task_name)
        choices = ["", *table.columns]
        drops = [gr.Dropdown(choices=choices, value=getattr(guess, k) or "")
                 for k in ("text", "label", "prompt", "response")]
        cols = [getattr(guess, k) for k in ("text", "label", "prompt", "response")]
        return table, table.frame.head(PREVIEW_ROWS), *drops, describe(table, task_name, *cols)

    def on_task(task_name: str, table: Table | None, preset_key: str) -> tuple:
        values = preset(preset_key, task_name)
        cols = guess_mapping(table.columns, task_name) if table is not None else ColumnMapping()
        picks = [getattr(cols, k) or "" for k in ("text", "label", "prompt", "response")]
        return (gr.Dropdown(value=DEFAULT_MODELS[task_name]), gr.Dropdown(visible=task_name == "classification"),
                gr.Row(visible=task_name == "causal-lm"), *picks, values.max_length,
                describe(table, task_name, *picks))

    def on_preset(preset_key: str, task_name: str) -> list:
        values = preset(preset_key, task_name)
        return [getattr(values, name) for name in NUMBER_FIELDS]

    col_inputs = [text_col, label_col, prompt_col, response_col]
    upload.change(on_upload, [upload, task], [table_state, preview, *col_inputs, report], api_visibility="private")
    task.change(on_task, [task, table_state, preset_name],
                [base, label_col, lm_cols, *col_inputs, numbers["max_length"], report], api_visibility="private")
    for dropdown in col_inputs:
        dropdown.input(describe, [table_state, task, *col_inputs], report, api_visibility="private")
    preset_name.change(on_preset, [preset_name, task], [numbers[n] for n in NUMBER_FIELDS],
                       api_visibility="private")

    # ---- training ---------------------------------------------------------------------
    @ui_errors
    def collect(task_name: str, base_ref: str, name: str, preset_key: str, target_text: str, ckpt: bool,
                text: str, label: str, prompt: str, response: str, *values: float) -> str:
        overrides = dict(zip(NUMBER_FIELDS, values, strict=True))
        overrides.update(target_modules=target_text, gradient_checkpointing=ckpt)
        settings = TrainSettings.from_dict(overrides, base=preset(preset_key, task_name))
        mapping = _mapping(task_name, text, label, prompt, response)
        return JobSpec(task_name, (base_ref or "").strip(), name, mapping, settings).to_json()

    def render(job: TrainingJob, final: bool) -> tuple:
        st = job.snapshot()
        md, fig, rows, headers = view.results_view(st.task, st.metrics, final and st.finished)
        runs = ctx.runs.list(None)
        return (st.run_id, view.progress_html(st), view.loss_figure(st), "\n".join(st.log), md, fig,
                gr.Dataframe(value=rows, headers=headers),
                view.run_rows(runs) if final else gr.skip(),
                gr.Dropdown(choices=[r.id for r in runs], value=st.run_id) if final else gr.skip())

    def follow(job: TrainingJob):
        last = -1
        while job.running:
            version = job.snapshot().version
            if version != last:
                last = version
                yield render(job, final=False)
            time.sleep(REFRESH_S)
        job.wait()
        yield render(job, final=True)
        st = job.snapshot()
        if st.status == "failed":
            raise InputError(st.error)

    @ui_errors
    def finetune(path: str | None, spec_json: str, request: gr.Request):
        """Train a LoRA adapter on an uploaded CSV/TSV/JSONL file.

        ``spec_json`` is a JSON object: {"task": "classification"|"causal-lm", "base_model": "minilm-l6",
        "name": "...", "columns": {"text": ..., "label": ...} or {"prompt": ..., "response": ...},
        "preset": "quick"|"balanced"|"thorough", "settings": {"epochs": 2, ...}}; columns are guessed from their
        names when left out. Streams progress; the
        first output is the run id, usable as the model reference ``run:<id>`` once complete.
        """
        spec = JobSpec.from_json(spec_json)
        table = _read(ctx, path)
        columns = spec.columns if any(spec.columns.to_dict().values()) else guess_mapping(table.columns, spec.task)
        data = prepare(table, spec.task, columns)
        job = TrainingJob(ctx.config, ctx.training_lock, data, spec.settings, spec.base_model, spec.name).start()
        jobs[getattr(request, "session_hash", None) or job.run_id] = job
        yield from follow(job)

    def stop(request: gr.Request):
        job = jobs.get(getattr(request, "session_hash", None) or "")
        if job is None or not job.running:
            return tuple(gr.skip() for _ in outputs)
        job.stop()
        job.wait(timeout=300)
        return render(job, final=True)

    setting_inputs = [task, base, run_name, preset_name, targets, checkpointing, *col_inputs,
                      *(numbers[n] for n in NUMBER_FIELDS)]
    outputs = [run_id, progress, loss_plot, log_box, results_md, confusion, results_table, runs_table, run_pick]
    train_event = start_btn.click(collect, setting_inputs, spec_box, api_visibility="private").success(
        finetune, [upload, spec_box], outputs, api_name="finetune", concurrency_id=TRAINING,
        concurrency_limit=4, show_progress="hidden",
    )
    stop_btn.click(stop, None, outputs, cancels=[train_event], api_name="stop_finetune", concurrency_limit=None)

    # ---- runs -------------------------------------------------------------------------
    def refresh() -> tuple:
        runs = ctx.runs.list(None)
        return view.run_rows(runs), gr.Dropdown(choices=[r.id for r in runs])

    def list_runs() -> list[dict]:
        """All fine-tuning runs (complete, stopped, failed), newest first, with their metrics."""
        return [view.run_record(r) for r in ctx.runs.list(None)]

    @ui_errors
    def download(run: str) -> str:
        return str(zip_run(ctx.runs, run))

    @ui_errors
    def merge(run: str, progress: gr.Progress = gr.Progress()) -> str:
        info = ctx.runs.get(run)
        progress(0.1, desc=f"Merging {info.id}")
        folder = merge_run(ctx.runs, info.id, ctx.config.models_dir, base_location(info.base_model, ctx.config),
                           ctx.config.allow_pickle_weights)
        return localize(f"Merged into `{folder}`: type this path into any model picker to use it as a full model.")

    @ui_errors
    def delete(run: str) -> tuple:
        info = ctx.runs.find(run)
        ctx.manager.unload(info.reference)
        delete_run(ctx.runs, info.id)
        return localize(f"Deleted run `{info.id}`."), *refresh()

    refresh_btn.click(refresh, None, [runs_table, run_pick], api_visibility="private")
    gr.api(list_runs, api_name="runs")
    download_btn.click(download, run_pick, zip_file, api_name="download_run")
    merge_btn.click(merge, run_pick, action_md, api_name="merge_run", concurrency_id=HEAVY)
    delete_btn.click(delete, run_pick, [action_md, runs_table, run_pick], api_name="delete_run")
    return {"file": upload, "task": task, "base": base, "text_col": text_col, "label_col": label_col,
            "prompt_col": prompt_col, "response_col": response_col, "preset": preset_name, "start": start_btn,
            "stop": stop_btn, "run_id": run_id, "progress": progress, "loss": loss_plot, "log": log_box,
            "results": results_md, "runs": runs_table, "run_pick": run_pick, **numbers}
