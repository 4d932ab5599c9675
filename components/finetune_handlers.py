"""The Fine-tune tab's handlers: plain values in, plain values out (no Gradio components), testable directly.

Training runs as a :class:`~pipelines.training.job.TrainingJob` kept in ``ctx.sessions`` under the browser session
and the kind ``"train"``: Stop finds it there, and closing the page stops it (``Sessions.end``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pipelines.context import AppContext
from pipelines.errors import InputError, WorkbenchError
from pipelines.messages import render
from pipelines.tables import Table
from pipelines.training import view
from pipelines.training.data import ColumnMapping, guess_mapping, prepare
from pipelines.training.enums import RunStatus, TrainTask
from pipelines.training.job import KIND, JobState, TrainingJob, base_location
from pipelines.training.settings import DEFAULT_MODELS, TrainSettings, preset
from pipelines.training.spec import JobSpec
from pipelines.training.store import check_run_id

PREVIEW_ROWS = 20
REFRESH_S = 0.7
ROLES = ("text", "label", "prompt", "response")
# Settings shown as number fields, in UI order (target modules and checkpointing are separate widgets).
NUMBER_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "learning_rate", "epochs", "batch_size", "grad_accum",
                 "max_length", "warmup_ratio", "weight_decay", "val_split", "seed")


def mapping_for(task: str, text: str | None, label: str | None, prompt: str | None,
                response: str | None) -> ColumnMapping:
    """The column mapping the form's four pickers describe for ``task``."""
    if task == TrainTask.CLASSIFICATION:
        return ColumnMapping(text=text or None, label=label or None)
    if prompt or response:
        return ColumnMapping(prompt=prompt or None, response=response or None)
    return ColumnMapping(text=text or None)


@dataclass
class TrainView:
    """Everything the training outputs show, in one language."""

    run_id: str
    progress: str
    loss: Any
    log: str
    results: str
    confusion: Any
    rows: list[list]
    headers: list[str]
    final: bool
    status: RunStatus


@dataclass
class RunsView:
    """The runs table and the run picker (newest first; ``selected`` preselected)."""

    rows: list[list[str]]
    headers: list[str]
    choices: list[str]
    selected: str | None


@dataclass
class Upload:
    table: Table | None
    preview: Any
    columns: list[str] = field(default_factory=list)
    picks: list[str] = field(default_factory=lambda: ["", "", "", ""])
    report: str = ""


class FinetuneHandlers:
    """What the Fine-tune tab does, on plain values."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # ---- data -----------------------------------------------------------------------------
    def read(self, path: str | None) -> Table:
        if not path:
            raise InputError("finetune.need_file")
        return self.ctx.read_upload(path)

    def describe(self, table: Table | None, task: str, *cols: str | None, lang: str = "en") -> str:
        """The data report for the current mapping, or the reason the data cannot be used."""
        if table is None:
            return ""
        try:
            return prepare(table, task, mapping_for(task, *cols)).report.to_markdown(lang)
        except WorkbenchError as exc:
            return f"⚠️ {exc.render(lang)}"

    def upload(self, path: str | None, task: str, lang: str = "en") -> Upload:
        if not path:
            return Upload(None, None)
        table = self.read(path)
        guess = guess_mapping(table.columns, task)
        picks = [getattr(guess, role) or "" for role in ROLES]
        return Upload(table, table.frame.head(PREVIEW_ROWS), list(table.columns), picks,
                      self.describe(table, task, *picks, lang=lang))

    def task_changed(self, task: str, table: Table | None, preset_key: str, lang: str = "en") -> dict[str, Any]:
        cols = guess_mapping(table.columns, task) if table is not None else ColumnMapping()
        picks = [getattr(cols, role) or "" for role in ROLES]
        return {"base": DEFAULT_MODELS[task], "picks": picks, "max_length": preset(preset_key, task).max_length,
                "report": self.describe(table, task, *picks, lang=lang)}

    @staticmethod
    def preset_values(preset_key: str, task: str) -> list[float]:
        values = preset(preset_key, task)
        return [getattr(values, name) for name in NUMBER_FIELDS]

    @staticmethod
    def collect(task: str, base_ref: str, name: str, preset_key: str, target_text: str, ckpt: bool,
                text: str, label: str, prompt: str, response: str, *values: float) -> str:
        """The form as the ``finetune`` request's JSON spec (settings checked here, before any upload is read)."""
        overrides: dict[str, Any] = dict(zip(NUMBER_FIELDS, values, strict=True))
        overrides.update(target_modules=target_text, gradient_checkpointing=ckpt)
        settings = TrainSettings.from_dict(overrides, base=preset(preset_key, task))
        mapping = mapping_for(task, text, label, prompt, response)
        return JobSpec(task, (base_ref or "").strip(), name or "", mapping, settings).to_json()

    # ---- training ---------------------------------------------------------------------------
    def start(self, path: str | None, spec_json: str, session: str) -> TrainingJob:
        """Check the request, prepare the data and start the run as the session's training job."""
        spec = JobSpec.from_json(spec_json)
        table = self.read(path)
        columns = spec.columns if any(spec.columns.to_dict().values()) else guess_mapping(table.columns, spec.task)
        data = prepare(table, spec.task, columns)
        job = TrainingJob(self.ctx.config, self.ctx.training_lock, data, spec.settings, spec.base_model, spec.name)
        job.start()
        self.ctx.sessions.put(session, KIND, job)
        return job

    def view(self, job: TrainingJob, final: bool, lang: str = "en") -> TrainView:
        st: JobState = job.snapshot()
        done = final and st.finished
        md, fig, rows, headers = view.results_view(st.task, st.metrics, done, lang)
        return TrainView(st.run_id, view.progress_html(st, lang), view.loss_figure(st, lang), st.log_text(lang),
                         md, fig, rows, headers, final, RunStatus.parse(st.status))

    def follow(self, job: TrainingJob, lang: str = "en", sleep: Callable[[float], None] = time.sleep,
               ) -> Iterator[TrainView]:
        """Views while the job runs (whenever it changed), then the final one; a failed run raises its error."""
        last = -1
        while job.running:
            version = job.snapshot().version
            if version != last:
                last = version
                yield self.view(job, final=False, lang=lang)
            sleep(REFRESH_S)
        job.wait()
        yield self.view(job, final=True, lang=lang)
        st = job.snapshot()
        if st.status == RunStatus.FAILED:
            raise WorkbenchError(st.error_msg) if st.error_msg else InputError("training.error_text", text=st.error)

    def stop(self, session: str, lang: str = "en", timeout: float = 300) -> TrainView | None:
        """Stop the session's running job and wait for it to save; None when nothing runs."""
        job = self.ctx.sessions.get(session, KIND)
        if job is None or not job.running:
            return None
        job.stop()
        job.wait(timeout=timeout)
        return self.view(job, final=True, lang=lang)

    @staticmethod
    def idle_progress(lang: str = "en") -> str:
        """The progress line before any training: "No training yet."."""
        return view.progress_html(None, lang)

    # ---- runs ---------------------------------------------------------------------------------
    def runs(self, lang: str = "en", selected: str | None = None) -> RunsView:
        """The runs table and picker; ``selected`` stays chosen when it still exists, else the newest run."""
        runs = self.ctx.runs.list(None)
        ids = [r.id for r in runs]
        pick = selected if selected in ids else (ids[0] if ids else None)
        return RunsView(view.run_rows(runs, lang), view.headers(view.RUN_COLUMNS, lang), ids, pick)

    def list_runs(self) -> list[dict]:
        return [view.run_record(r) for r in self.ctx.runs.list(None)]

    def download(self, run: str | None) -> str:
        return str(self.ctx.runs.zip(check_run_id(run)))

    def run_report(self, run: str | None, lang: str = "en") -> str:
        """A self-contained HTML report of the run (settings, data, loss curves, evaluations, environment)."""
        from pipelines.evaluation.run_report import write_run_report

        return str(write_run_report(self.ctx.runs, check_run_id(run), lang))

    def merge(self, run: str | None, lang: str = "en",
              progress: Callable[[float, str], None] | None = None) -> str:
        info = self.ctx.runs.get(check_run_id(run))
        if progress is not None:
            progress(0.1, render("finetune.merging", lang, {"run": info.id}))
        folder = self.ctx.runs.merge(info.id, self.ctx.config.models_dir,
                                     base_location(info.base_model, self.ctx.config),
                                     self.ctx.config.allow_pickle_weights)
        return render("finetune.merged", lang, {"folder": str(folder)})

    def delete(self, run: str | None, lang: str = "en") -> str:
        info = self.ctx.runs.find(check_run_id(run))
        self.ctx.manager.unload(info.reference)
        self.ctx.runs.delete(info.id)
        return render("finetune.deleted", lang, {"run": info.id})
