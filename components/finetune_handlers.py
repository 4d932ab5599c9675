"""The Fine-tune tab's handlers: plain values in, plain values out (no Gradio components), testable directly.

Training runs in a launched child process followed by a :class:`~pipelines.training.job.TrainingJob`, kept in
``ctx.sessions`` under the browser session (Stop finds it there) and under :data:`FOLLOWED`, the app's own key:
a reloaded page, another handler instance or a restarted app (:meth:`FinetuneHandlers.reattach`) finds the
running job there and shows its live progress again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pipelines.context import AppContext
from pipelines.errors import BusyError, InputError, WorkbenchError
from pipelines.messages import render
from pipelines.tables import Table
from pipelines.training import view
from pipelines.training.data import ColumnMapping, guess_mapping, prepare
from pipelines.training.enums import RunStatus, TrainTask
from pipelines.training.hardware import ControlSettings, HardwareSettings
from pipelines.training.job import KIND, JobState, TrainingJob, base_location
from pipelines.training.recovery import live_child
from pipelines.training.settings import DEFAULT_MODELS, TrainSettings, preset
from pipelines.training.spec import JobSpec
from pipelines.training.store import TMP_SUFFIX, check_run_id

PREVIEW_ROWS = 20
REFRESH_S = 0.7
ROLES = ("text", "label", "prompt", "response")
# Settings shown as number fields, in UI order (target modules and checkpointing are separate widgets).
NUMBER_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "learning_rate", "epochs", "batch_size", "grad_accum",
                 "max_length", "warmup_ratio", "weight_decay", "val_split", "seed", "patience")
# The hardware and checkpoint fields of the form, in UI order (see ``collect``).
HARDWARE_FIELDS = ("device", "processes", "precision", "strategy", "checkpoint_every", "keep_checkpoints")
FOLLOWED = "app:training"  # the sessions key under which the app keeps the running training job


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
    def read(self, path: str | None, task: str = "") -> Table:
        if not path:
            raise InputError("finetune.need_file")
        from pipelines.training.domain import is_plain_text, read_plain_text

        if is_plain_text(path, task):  # domain text (.md, or .txt for domain adaptation): one paragraph a row
            return read_plain_text(path, self.ctx.config.max_upload_mb * 2**20, self.ctx.config.max_rows)
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
        table = self.read(path, task)
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
                text: str, label: str, prompt: str, response: str, *values: Any) -> str:
        """The form as the ``finetune`` request's JSON spec (settings checked here, before any upload is read).

        ``values``: the NUMBER_FIELDS, then optionally the HARDWARE_FIELDS (device, processes, precision,
        strategy, checkpoint every N steps, checkpoints kept)."""
        numbers, rest = values[:len(NUMBER_FIELDS)], values[len(NUMBER_FIELDS):]
        overrides: dict[str, Any] = dict(zip(NUMBER_FIELDS, numbers, strict=True))
        overrides.update(target_modules=target_text, gradient_checkpointing=ckpt)
        settings = TrainSettings.from_dict(overrides, base=preset(preset_key, task))
        chosen = dict(zip(HARDWARE_FIELDS, rest, strict=False))
        hardware = HardwareSettings.from_dict({k: chosen[k] for k in HARDWARE_FIELDS[:4] if k in chosen})
        control = ControlSettings.from_dict({k: chosen[k] for k in HARDWARE_FIELDS[4:] if k in chosen})
        mapping = mapping_for(task, text, label, prompt, response)
        return JobSpec(task, (base_ref or "").strip(), name or "", mapping, settings, hardware, control).to_json()

    # ---- training ---------------------------------------------------------------------------
    def current(self) -> TrainingJob | None:
        """The training job that runs now (started here, resumed, or re-attached after a restart), or None."""
        job = self.ctx.sessions.get(FOLLOWED, KIND)
        return job if job is not None and job.running else None

    def reattach(self) -> TrainingJob | None:
        """Follow a training child that runs without a follower in this app (the app restarted); the job."""
        job = self.current()
        if job is not None:
            return job
        root, found = self.ctx.config.runs_dir, None
        for folder in sorted(root.glob(f".*{TMP_SUFFIX}")) if root.is_dir() else []:
            if live_child(folder):  # every child (several on a multi-GPU box), each holding its own devices
                try:
                    job = TrainingJob.attach(self.ctx.config, self.ctx.training_slots, folder).start()
                except BusyError:
                    continue
                self.ctx.sessions.put(FOLLOWED, KIND, job)
                found = found or job
        return found

    def _check_free(self, hardware: HardwareSettings | None = None) -> None:
        """BusyError naming the run that trains now, unless the devices ``hardware`` asks for are free (one job per
        device set: on a box with several GPUs a second job takes the free ones)."""
        job = self.reattach()
        if job is not None and not self.ctx.training_slots.can_start(hardware or HardwareSettings()):
            st = job.snapshot()
            raise BusyError("training.busy_run", run=job.name or job.run_id, model=job.base_model, step=st.step,
                            total=st.total_steps or "?")

    def _register(self, job: TrainingJob, session: str) -> TrainingJob:
        self.ctx.sessions.put(session, KIND, job)
        self.ctx.sessions.put(FOLLOWED, KIND, job)
        return job

    def start(self, path: str | None, spec_json: str, session: str,
              adjust: Callable[[Any], Any] | None = None) -> TrainingJob:
        """Check the request, prepare the data and start the run as the session's training job."""
        *_, job = self.start_steps(path, spec_json, session, adjust)
        return job

    def start_steps(self, path: str | None, spec_json: str, session: str,
                    adjust: Callable[[Any], Any] | None = None) -> Iterator[Any]:
        """:meth:`start`, yielding augmentation progress (``Msg``) before the started job (the last item).
        ``adjust`` changes the prepared data first (corrections: pipelines/training/corrections.py)."""
        from pipelines.messages import Msg
        from pipelines.training.augment import spec_augmenter

        spec = JobSpec.from_json(spec_json)
        table = self.read(path, spec.task)
        columns = spec.columns if any(spec.columns.to_dict().values()) else guess_mapping(table.columns, spec.task)
        data = prepare(table, spec.task, columns)
        data = adjust(data) if adjust is not None else data
        self._check_free(spec.hardware)
        augmenter = spec_augmenter(self.ctx, data, spec)  # EDA and paraphrases of the training rows (off: none)
        for done, total in augmenter.steps():
            yield Msg.of("augment.progress", done=done, total=total)
        job = TrainingJob(self.ctx.config, self.ctx.training_slots, augmenter.result, spec.settings, spec.base_model,
                          spec.name, hardware=spec.hardware, control=spec.control)
        yield self._register(job.start(), session)

    def resume(self, run: str | None, session: str, hardware: HardwareSettings | None = None,
               user: str | None = None) -> TrainingJob:
        """Continue a stopped, failed or interrupted run from its last checkpoint, as the session's job."""
        info = self.ctx.runs.find(check_run_id(run), user)
        self._check_free(hardware)
        self.ctx.manager.unload(info.reference)  # a stopped run may be loaded as a model: its folder moves
        job = TrainingJob.resume(self.ctx.config, self.ctx.training_slots, info, hardware)
        return self._register(job.start(), session)

    def session_job(self, session: str) -> TrainingJob | None:
        """The session's training job (running or just ended), or None."""
        return self.ctx.sessions.get(session, KIND)

    def follow_current(self, session: str, user: str | None = None) -> TrainingJob | None:
        """A reloaded page: the running job (now also this session's, so its Stop works), or None (also when,
        with login, the job is another user's)."""
        job = self.reattach()
        if job is not None and not self.ctx.runs.visible(job.run_id, user):
            return None
        if job is not None:
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
        """Stop the session's running job and wait for it to end; None when nothing runs.

        The first Stop asks the child to save a checkpoint and exit within one optimizer step; a Stop while
        that one still waits kills the child."""
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
    def runs(self, lang: str = "en", selected: str | None = None, user: str | None = None) -> RunsView:
        """The runs table and picker; ``selected`` stays chosen when it still exists, else the newest run.
        With login (``user``), the user's runs only (an admin's: all)."""
        runs = self.ctx.runs.list(None, user)
        ids = [r.id for r in runs]
        pick = selected if selected in ids else (ids[0] if ids else None)
        return RunsView(view.run_rows(runs, lang), view.headers(view.RUN_COLUMNS, lang), ids, pick)

    def list_runs(self, user: str | None = None) -> list[dict]:
        return [view.run_record(r) for r in self.ctx.runs.list(None, user)]

    def download(self, run: str | None, user: str | None = None) -> str:
        from pipelines.user_files import keep_for

        return keep_for(user, [self.ctx.runs.zip(check_run_id(run), user)], "lmw-run-", move=True)[0]

    def run_report(self, run: str | None, lang: str = "en", user: str | None = None) -> str:
        """A self-contained HTML report of the run (settings, data, loss curves, evaluations, environment)."""
        from pipelines.evaluation.run_report import write_run_report
        from pipelines.user_files import keep_for

        self.ctx.runs.check_owner(check_run_id(run), user)
        return keep_for(user, [write_run_report(self.ctx.runs, check_run_id(run), lang)], "lmw-report-", move=True)[0]

    def run_card(self, run: str | None, lang: str = "en", user: str | None = None) -> str:
        """The same report as Markdown, for a model card."""
        from pipelines.evaluation.model_card import write_run_markdown
        from pipelines.user_files import keep_for

        self.ctx.runs.check_owner(check_run_id(run), user)
        return keep_for(user, [write_run_markdown(self.ctx.runs, check_run_id(run), lang)], "lmw-report-",
                        move=True)[0]

    def merge(self, run: str | None, lang: str = "en",
              progress: Callable[[float, str], None] | None = None, user: str | None = None) -> str:
        info = self.ctx.runs.get(check_run_id(run), user)
        if progress is not None:
            progress(0.1, render("finetune.merging", lang, {"run": info.id}))
        folder = self.ctx.runs.merge(info.id, self.ctx.config.models_dir,
                                     base_location(info.base_model, self.ctx.config),
                                     self.ctx.config.allow_pickle_weights)
        return render("finetune.merged", lang, {"folder": str(folder)})

    def export_gguf(self, run: str | None, lang: str = "en",
                    progress: Callable[[float, str], None] | None = None, user: str | None = None) -> str:
        """The run merged into one GGUF model file, ``<models_dir>/<run>-merged.gguf``, for llama.cpp."""
        from pipelines.keyed_text import KeyedText
        from pipelines.messages import Msg
        from pipelines.training.gguf_merged import export_run

        info = self.ctx.runs.get(check_run_id(run), user)
        if progress is not None:
            progress(0.0, KeyedText(Msg.of("gguf_merged.exporting", run=info.id)))
        return export_run(info, self.ctx.config, progress).msg.render(lang)

    def delete(self, run: str | None, lang: str = "en", user: str | None = None) -> str:
        info = self.ctx.runs.find(check_run_id(run), user)
        self.ctx.manager.unload(info.reference)
        self.ctx.runs.delete(info.id)
        return render("finetune.deleted", lang, {"run": info.id})

    # ---- users (with login, ``LMW_USERS``) -----------------------------------------------------------------------
    def check_quota(self, user: str | None, path: str | None = None) -> None:
        """Before a run starts for ``user``: the user's running jobs (batches and evaluations too), stored runs
        and their disk use, and the size of the uploaded file at ``path``."""
        import os

        from pipelines.quotas import session_jobs

        others = session_jobs(self.ctx.sessions, user) if user is not None else 0
        self.ctx.quotas.check_new_run(self.ctx.runs, user, others)
        if path and os.path.isfile(path):
            self.ctx.quotas.check_upload(os.path.getsize(path), user)

    def own(self, job: TrainingJob, user: str | None) -> TrainingJob:
        """Record ``user`` as the owner of the job's run (nothing without login)."""
        self.ctx.runs.set_owner(job.run_id, user)
        return job
