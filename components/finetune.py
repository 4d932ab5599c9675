"""Fine-tune tab: upload a table, map columns, train a LoRA adapter live, inspect results, manage runs.

Layout and event wiring only; the handlers are :class:`components.finetune_handlers.FinetuneHandlers`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr

from components.common import ErrorLine, examples
from components.finetune_augment import augment_inputs, extend_augment
from components.finetune_gguf_export import wire_gguf_export
from components.finetune_handlers import NUMBER_FIELDS, REFRESH_S, FinetuneHandlers, RunsView, TrainView
from components.finetune_hardware import HardwareForm, hardware_form
from components.finetune_preflight import attach, build_compare_panel, build_preflight_panel, presets_row
from components.finetune_probes import ProbeInputs, extend_spec, probes_inputs, probes_table, wire_probes
from components.i18n import request_lang, say, t
from components.users import user_of
from pipelines.context import HEAVY, AppContext
from pipelines.messages import Msg
from pipelines.models.embedded import EMBEDDED
from pipelines.sessions import session_key
from pipelines.training.settings import DEFAULT_MODELS, TrainSettings, preset

TRAINING = "training"  # own concurrency id: training never queues behind (or blocks) inference
# Every event of the TRAINING group takes this limit: Gradio gives a group the lowest limit of its events, and
# with 1 a second user's start would wait silently in the queue instead of being told training is busy.
TRAINING_STREAMS = 4
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
INT_FIELDS = frozenset(f.name for f in fields(TrainSettings) if f.type == "int")
TRAIN_OUTPUTS = 9  # run id, progress, loss, log, results, confusion, details, runs table, run picker


@dataclass
class DataForm:
    upload: gr.File
    task: gr.Radio
    base: gr.Dropdown
    cols: list[gr.Dropdown]  # text, label, prompt, response
    lm_cols: gr.Row
    run_name: gr.Textbox
    table: gr.State
    preview: gr.Dataframe
    report: gr.Markdown
    errors: ErrorLine


@dataclass
class SettingsForm:
    preset: gr.Radio
    numbers: dict[str, gr.Number]
    targets: gr.Textbox
    checkpointing: gr.Checkbox
    preflight: Any = None  # the pre-flight panel and the presets row (components/finetune_preflight.py)
    presets: Any = None


@dataclass
class TrainPanel:
    start: gr.Button
    stop: gr.Button
    resume: gr.Button
    timer: gr.Timer  # follows a run that was running when the page loaded (a reload, an app restart)
    errors: ErrorLine
    spec: gr.Textbox
    outputs: list[gr.components.Component]


@dataclass
class RunsPanel:
    table: gr.Dataframe
    pick: gr.Dropdown
    refresh: gr.Button
    download: gr.Button
    merge: gr.Button
    delete: gr.Button
    errors: ErrorLine
    action: gr.Markdown
    zip_file: gr.File
    report: gr.Button
    card: gr.Button
    gguf: gr.Button | None = None  # export the run merged into one GGUF file (components/finetune_gguf_export.py)


def _data_form(ctx: AppContext) -> DataForm:
    table = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label=t("finetune.file"), file_types=[".csv", ".tsv", ".jsonl", ".txt", ".md"],
                             type="filepath", elem_id="ft-file")
            task = gr.Radio([(t("finetune.task_cls"), "classification"), (t("finetune.task_lm"), "causal-lm"),
                             (t("probes.task_domain"), "domain")],
                            value="classification", label=t("finetune.task"), elem_id="ft-task")
            base = gr.Dropdown([m.name for m in EMBEDDED.values() if m.fmt != "spacy"],
                               value=DEFAULT_MODELS["classification"], label=t("finetune.base"),
                               info=t("finetune.base_info"), allow_custom_value=True, filterable=True,
                               elem_id="ft-base")
            with gr.Row():
                text_col = gr.Dropdown([], label=t("finetune.col_text"), allow_custom_value=True)
                label_col = gr.Dropdown([], label=t("finetune.col_label"), allow_custom_value=True)
            with gr.Row(visible=False) as lm_cols:
                prompt_col = gr.Dropdown([], label=t("finetune.col_prompt"), allow_custom_value=True)
                response_col = gr.Dropdown([], label=t("finetune.col_response"), allow_custom_value=True)
            run_name = gr.Textbox(label=t("finetune.name"), max_length=80)
        with gr.Column(scale=2):
            preview = gr.Dataframe(label=t("finetune.preview"), interactive=False, max_height=300)
            report = gr.Markdown(elem_id="ft-report")
            errors = ErrorLine(ctx, "ft-data-errors")
    # Full width, so every column of the examples shows; clicking one fills the form (the upload's change
    # event then shows the preview and the data report).
    with gr.Column(elem_id="ft-examples"):
        examples([[str(EXAMPLES_DIR / "sentiment.csv"), "classification", "minilm-l6", "sentiment"],
                  [str(EXAMPLES_DIR / "instructions.csv"), "causal-lm", "smollm2-135m-instruct", "instructions"]],
                 [upload, task, base, run_name])
    return DataForm(upload, task, base, [text_col, label_col, prompt_col, response_col], lm_cols, run_name,
                    table, preview, report, errors)


def _settings_form() -> SettingsForm:
    with gr.Accordion(t("finetune.settings"), open=False, elem_id="ft-settings"):
        preset_name = gr.Radio([(t("finetune.quick"), "quick"), (t("finetune.balanced"), "balanced"),
                                (t("finetune.thorough"), "thorough")], value="quick", label=t("finetune.preset"),
                               elem_id="ft-preset")
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
    return SettingsForm(preset_name, numbers, targets, checkpointing)


def _train_panel(ctx: AppContext, handlers: FinetuneHandlers) -> TrainPanel:
    spec = gr.Textbox(visible=False)
    with gr.Row():
        start = gr.Button(t("finetune.start"), variant="primary", elem_id="ft-start")
        stop = gr.Button(t("finetune.stop"), variant="stop", elem_id="ft-stop")
        resume = gr.Button(t("finetune.resume"), elem_id="ft-resume")
    gr.Markdown(t("finetune.resume_info"), elem_id="ft-resume-info")
    errors = ErrorLine(ctx, "ft-train-errors")
    run_id = gr.Textbox(label=t("finetune.run_id"), interactive=False, elem_id="ft-run-id")
    progress = gr.HTML(elem_id="ft-progress")  # "No training yet." in the page's language, at load
    loss = gr.Plot(label=t("finetune.loss"), elem_id="ft-loss")
    log = gr.Textbox(label=t("finetune.log"), lines=8, max_lines=8, autoscroll=True, interactive=False,
                     elem_id="ft-log")
    results = gr.Markdown(elem_id="ft-results")
    with gr.Row():
        confusion = gr.Plot(label=t("finetune.confusion"), elem_id="ft-confusion")
        details = gr.Dataframe(label=t("finetune.details"), interactive=False, wrap=True, elem_id="ft-details")
    timer = gr.Timer(REFRESH_S, active=False)
    return TrainPanel(start, stop, resume, timer, errors, spec,
                      [run_id, progress, loss, log, results, confusion, details])


def _runs_panel(ctx: AppContext) -> RunsPanel:
    gr.Markdown(t("finetune.runs_intro"))
    table = gr.Dataframe(label=t("finetune.runs"), interactive=False, wrap=True, elem_id="ft-runs")
    with gr.Row():
        pick = gr.Dropdown([], label=t("finetune.run_pick"), allow_custom_value=True, scale=2, elem_id="ft-run-pick")
        refresh = gr.Button(t("finetune.refresh"), elem_id="ft-refresh")
        download = gr.Button(t("finetune.download"), elem_id="ft-download")
        report = gr.Button(t("evaluate.run_report"), elem_id="ft-run-report")
        card = gr.Button(t("evaluate.run_card"), elem_id="ft-run-card")
        with gr.Column(min_width=160):  # Merge and, below it, Export GGUF share one place in the row
            merge = gr.Button(t("finetune.merge"), elem_id="ft-merge")
            gguf = gr.Button(t("gguf_merged.export"), elem_id="ft-export-gguf")
        delete = gr.Button(t("finetune.delete"), variant="stop", elem_id="ft-delete")
    errors = ErrorLine(ctx, "ft-run-errors")
    action = gr.Markdown(elem_id="ft-action")
    zip_file = gr.File(label=t("finetune.zip"), interactive=False, elem_id="ft-zip")
    return RunsPanel(table, pick, refresh, download, merge, delete, errors, action, zip_file, report, card, gguf)


# ---- converting plain views into component updates -------------------------------------------------------
def runs_updates(runs: RunsView) -> tuple[Any, Any]:
    return (gr.Dataframe(value=runs.rows, headers=runs.headers),
            gr.Dropdown(choices=runs.choices, value=runs.selected))


def train_updates(handlers: FinetuneHandlers, shown: TrainView, lang: str, user: str | None = None) -> tuple:
    runs = runs_updates(handlers.runs(lang, shown.run_id, user)) if shown.final else (gr.skip(), gr.skip())
    return (shown.run_id, shown.progress, shown.loss, shown.log, shown.results, shown.confusion,
            gr.Dataframe(value=shown.rows, headers=shown.headers), *runs)


def build_finetune_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Fine-tune tab inside the current Blocks context."""
    handlers = FinetuneHandlers(ctx)
    gr.Markdown(t("finetune.intro"))
    data = _data_form(ctx)
    settings = _settings_form()
    settings.presets = presets_row(ctx)  # save/load named presets
    hardware = hardware_form()
    probes = probes_inputs()  # live probes and the domain option (components/finetune_probes.py), before Start
    settings.augment = augment_inputs(ctx)  # EDA and paraphrases of the training rows (components/finetune_augment.py)
    settings.preflight = build_preflight_panel(ctx)  # token lengths, balance, duplicates, estimate
    train = _train_panel(ctx, handlers)
    probe_table = probes_table()
    results = _results_panel(ctx)
    runs = _runs_panel(ctx)
    build_compare_panel(ctx)  # compare 2-5 runs: loss curves, settings side by side
    _wire_results(ctx, results, runs.pick, train.outputs[0])
    _wire_data(handlers, data, settings)
    _wire_training(handlers, data, settings, hardware, train, runs, probes)
    wire_probes(ctx, probe_table, train.outputs[1], runs.pick)
    _wire_runs(handlers, runs)
    _wire_load(handlers, train, runs)
    handlers.reattach()  # a training child left running by a previous app: follow it (and hold the slot)
    run_id, progress, loss, log, results_md, *_ = train.outputs
    return {"file": data.upload, "task": data.task, "base": data.base, "text_col": data.cols[0],
            "label_col": data.cols[1], "prompt_col": data.cols[2], "response_col": data.cols[3],
            "preset": settings.preset, "start": train.start, "stop": train.stop, "run_id": run_id,
            "progress": progress, "loss": loss, "log": log, "results": results_md, "runs": runs.table,
            "run_pick": runs.pick, **settings.numbers}


def _wire_data(handlers: FinetuneHandlers, data: DataForm, settings: SettingsForm) -> None:
    def on_upload(path: str | None, task: str) -> tuple:
        got = handlers.upload(path, task, request_lang())
        choices = ["", *got.columns]
        drops = [gr.Dropdown(choices=choices, value=pick) for pick in got.picks]
        return got.table, got.preview, *drops, got.report

    def on_task(task: str, table: Any, preset_key: str) -> tuple:
        new = handlers.task_changed(task, table, preset_key, request_lang())
        return (gr.Dropdown(value=new["base"]), gr.Dropdown(visible=task == "classification"),
                gr.Row(visible=task == "causal-lm"), *new["picks"], new["max_length"], new["report"])

    def on_columns(table: Any, task: str, *cols: str | None) -> str:
        return handlers.describe(table, task, *cols, lang=request_lang())

    numbers = [settings.numbers[n] for n in NUMBER_FIELDS]
    upload = data.upload.change(data.errors.guard(on_upload), [data.upload, data.task],
                                [data.table, data.preview, *data.cols, data.report], api_visibility="private")
    data.errors.watch(upload)
    data.task.change(on_task, [data.task, data.table, settings.preset],
                     [data.base, data.cols[1], data.lm_cols, *data.cols, settings.numbers["max_length"],
                      data.report], api_visibility="private")
    for dropdown in data.cols:
        dropdown.input(on_columns, [data.table, data.task, *data.cols], data.report, api_visibility="private")
    settings.preset.change(handlers.preset_values, [settings.preset, data.task], numbers, api_visibility="private")


def _results_panel(ctx: AppContext) -> dict[str, Any] | None:
    """The before/after and baseline panel (components/finetune_results.py), wired once the run pickers exist."""
    try:
        from components.finetune_results import build_results_panel
    except ImportError:
        return None
    return build_results_panel(ctx)


def _wire_results(ctx: AppContext, panel: dict[str, Any] | None, *sources: gr.components.Component) -> None:
    """The panel follows the picked run and the run just trained (their values are run ids)."""
    if panel is not None:
        from components.finetune_results import wire_results_panel

        wire_results_panel(ctx, panel, *sources)


def _wire_training(handlers: FinetuneHandlers, data: DataForm, settings: SettingsForm, hardware: HardwareForm,
                   train: TrainPanel, runs: RunsPanel, probes: ProbeInputs | None = None) -> None:
    outputs = [*train.outputs, runs.table, runs.pick]

    def finetune(path: str | None, spec_json: str, request: gr.Request):
        """Train a LoRA adapter on an uploaded CSV/TSV/JSONL file.

        ``spec_json`` is a JSON object: {"task": "classification"|"causal-lm", "base_model": "minilm-l6",
        "name": "...", "columns": {"text": ..., "label": ...} or {"prompt": ..., "response": ...},
        "preset": "quick"|"balanced"|"thorough", "settings": {"epochs": 2, ...}}; columns are guessed from their
        names when left out. "task": "domain" continues pre-training on raw text (one text column, or a .txt/.md
        file split into paragraphs; an encoder base trains as "domain-mlm"); "probes": [up to 5 prompts or texts]
        are answered at every evaluation (metrics["probes"] of the run). Streams progress; the
        first output is the run id, usable as the model reference ``run:<id>`` once complete.
        """
        lang, user = request_lang(request), user_of(handlers.ctx, request)
        handlers.check_quota(user, path)  # with login: the user's running jobs, stored runs, disk, upload size
        for job in handlers.start_steps(path, spec_json, session_key(request)):  # augmentation progress, the job
            if isinstance(job, Msg):
                yield (gr.skip(), f"<p>{say(job, lang)}</p>", *(gr.skip(),) * (TRAIN_OUTPUTS - 2))
        handlers.own(job, user)
        for shown in handlers.follow(job, lang):
            yield train_updates(handlers, shown, lang, user)

    def resume_finetune(run: str | None, request: gr.Request):
        """Continue a stopped, failed or interrupted run from its last checkpoint (same data order; the curves
        continue from the checkpoint's step). Streams progress like ``finetune``; the first output is the run id."""
        lang, user = request_lang(request), user_of(handlers.ctx, request)
        job = handlers.resume(run, session_key(request), user=user)
        for shown in handlers.follow(job, lang):
            yield train_updates(handlers, shown, lang, user)

    def stop(request: gr.Request) -> tuple:
        lang = request_lang(request)
        shown = handlers.stop(session_key(request), lang)
        user = user_of(handlers.ctx, request)
        return tuple(gr.skip() for _ in outputs) if shown is None else train_updates(handlers, shown, lang, user)

    inputs = [data.task, data.base, data.run_name, settings.preset, settings.targets, settings.checkpointing,
              *data.cols, *(settings.numbers[n] for n in NUMBER_FIELDS), *hardware.inputs]
    collect = train.start.click(train.errors.guard(handlers.collect), inputs, train.spec, api_visibility="private")
    collect = extend_spec(probes, collect, train.spec, train.errors) if probes is not None else collect
    collect = attach(handlers.ctx, settings, data, collect, train.spec, handlers.collect, inputs)  # pre-flight
    collect = extend_augment(settings.augment, collect, train.spec, train.errors)
    train_event = collect.success(
        train.errors.guard(finetune), [data.upload, train.spec], outputs, api_name="finetune",
        concurrency_id=TRAINING, concurrency_limit=TRAINING_STREAMS, show_progress="hidden",
    )
    resume_event = train.resume.click(train.errors.guard(resume_finetune), runs.pick, outputs,
                                      api_name="resume_finetune", concurrency_id=TRAINING,
                                      concurrency_limit=TRAINING_STREAMS, show_progress="hidden")
    stop_event = train.stop.click(train.errors.guard(stop), None, outputs, cancels=[train_event, resume_event],
                                  api_name="stop_finetune", concurrency_limit=None)
    train.errors.watch(collect, train_event, resume_event, stop_event)


def _wire_runs(handlers: FinetuneHandlers, runs: RunsPanel) -> None:
    def refresh(selected: str | None, request: gr.Request) -> tuple:
        return runs_updates(handlers.runs(request_lang(request), selected, user_of(handlers.ctx, request)))

    def list_runs(request: gr.Request) -> list[dict]:
        """All fine-tuning runs (complete, stopped, failed), newest first, with their metrics."""
        return handlers.list_runs(user_of(handlers.ctx, request))

    def download(run: str | None, request: gr.Request) -> str:
        return handlers.download(run, user_of(handlers.ctx, request))

    def run_report(run: str | None, request: gr.Request) -> str:
        """A self-contained HTML report of a run: settings, data summary, loss curves, evaluations, environment."""
        return handlers.run_report(run, request_lang(request), user_of(handlers.ctx, request))

    def run_card(run: str | None, request: gr.Request) -> str:
        return handlers.run_card(run, request_lang(request), user_of(handlers.ctx, request))

    def merge(run: str | None, request: gr.Request, progress: gr.Progress = gr.Progress()) -> str:
        return handlers.merge(run, request_lang(request), lambda f, desc: progress(f, desc=desc),
                              user_of(handlers.ctx, request))

    def delete(run: str | None, request: gr.Request) -> tuple:
        lang, user = request_lang(request), user_of(handlers.ctx, request)
        return handlers.delete(run, lang, user), *runs_updates(handlers.runs(lang, user=user))

    guard = runs.errors.guard
    events = [
        runs.refresh.click(refresh, runs.pick, [runs.table, runs.pick], api_visibility="private"),
        runs.download.click(guard(download), runs.pick, runs.zip_file, api_name="download_run"),
        runs.report.click(guard(run_report), runs.pick, runs.zip_file, api_name="run_report"),
        runs.card.click(guard(run_card), runs.pick, runs.zip_file, api_visibility="private"),
        runs.delete.click(guard(delete), runs.pick, [runs.action, runs.table, runs.pick], api_name="delete_run"),
    ]
    merge_event = runs.merge.click(guard(merge), runs.pick, runs.action, api_name="merge_run", concurrency_id=HEAVY)
    merge_event.then(refresh, runs.pick, [runs.table, runs.pick], api_visibility="private", show_progress="hidden")
    gr.api(list_runs, api_name="runs")
    runs.errors.watch(*events, merge_event)
    wire_gguf_export(handlers, runs)


def _wire_load(handlers: FinetuneHandlers, train: TrainPanel, runs: RunsPanel) -> None:
    """At page load: the runs on disk (the newest selected) and the progress line, in the page's language; when a
    run is training (a reload, another tab, an app restart) its live progress, followed by the timer."""
    outputs = [*train.outputs, runs.table, runs.pick, train.timer]

    def on_load(selected: str | None, request: gr.Request) -> tuple:
        lang, user = request_lang(request), user_of(handlers.ctx, request)
        job = handlers.follow_current(session_key(request), user)
        if job is None:
            idle = [gr.skip()] * len(train.outputs)
            idle[1] = handlers.idle_progress(lang)
            return (*idle, *runs_updates(handlers.runs(lang, selected, user)), gr.Timer(active=False))
        shown = handlers.view(job, final=False, lang=lang)
        return (*train_updates(handlers, shown, lang)[:-2], *runs_updates(handlers.runs(lang, selected, user)),
                gr.Timer(active=True))

    def on_tick(request: gr.Request) -> tuple:
        lang = request_lang(request)
        job = handlers.session_job(session_key(request))
        if job is None:
            return (*[gr.skip()] * (len(outputs) - 1), gr.Timer(active=False))
        shown = handlers.view(job, final=not job.running, lang=lang)
        return (*train_updates(handlers, shown, lang, user_of(handlers.ctx, request)), gr.Timer(active=job.running))

    root = gr.context.Context.root_block
    if root is not None:
        root.load(on_load, runs.pick, outputs, api_visibility="private", queue=False, show_progress="hidden")
    train.timer.tick(on_tick, None, outputs, api_visibility="private", show_progress="hidden",
                     concurrency_limit=None)
