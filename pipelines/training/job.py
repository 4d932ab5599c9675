"""One training run as seen from the app: its device slots, the run folder, the launched child, and a worker
thread that follows the child's event log into a :class:`JobState` for the UI.

The training itself never runs in the app's process: :meth:`TrainingJob.start` writes ``spec.json`` and
``data.json`` into the run folder and starts ``pipelines.training.child`` with a launcher (``launch.py``). A crash
of the child (out of memory, a segfault, a kill) ends only the child; the follower marks the run failed, and
resumable when it has a checkpoint. A run outlives the browser session that started it, and the app: a restarted
app re-attaches to a child that still runs (:meth:`TrainingJob.attach`).
"""

from __future__ import annotations

import copy
import logging
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from pipelines.config import AppConfig
from pipelines.engines.remote import is_remote
from pipelines.errors import BusyError, InputError
from pipelines.messages import Msg
from pipelines.sessions import WorkerJob
from pipelines.training import launch
from pipelines.training.data import PreparedData
from pipelines.training.enums import RunStatus
from pipelines.training.hardware import ControlSettings, HardwareSettings, LaunchPlan
from pipelines.training.progress import LOG_FILE, EventLog, EventTail, JobState, LogLine, apply, replay
from pipelines.training.recovery import crash_message, finalize_dead
from pipelines.training.settings import TrainSettings
from pipelines.training.slots import DeviceSlots, plan_devices, recorded_devices
from pipelines.training.spec import RunSpec, read_data
from pipelines.training.store import RunInfo, RunStore, tmp_folder
from pipelines.training.writer import RunWriter, new_run_id, read_meta, update_meta

log = logging.getLogger(__name__)
KIND = "train"  # the Sessions kind of a training job
OOM_KEY = "training.oom"
OOM_MESSAGE = str(Msg(OOM_KEY))
POLL_S = 0.25
__all__ = ["KIND", "OOM_MESSAGE", "JobState", "LogLine", "TrainingJob", "base_location"]


def base_location(reference: str, config: AppConfig) -> str:
    """A loadable folder or hub id for a base-model reference (not a fine-tuned run, not spaCy)."""
    from pipelines.models import refs
    from pipelines.models.embedded import ensure_local_folder

    if is_remote(reference):
        raise InputError("engines.error.remote_no_internals", model=reference[:200])  # training needs the weights
    ref = refs.resolve(reference, config)
    if ref.run is not None:
        raise InputError("training.base_is_run")
    if ref.is_spacy:
        raise InputError("training.base_is_spacy")
    if ref.embedded is not None:
        return str(ensure_local_folder(ref.embedded, Path(config.cache_dir)))
    return ref.location


class TrainingJob(WorkerJob):
    """Start with :meth:`start` (raises :class:`BusyError` if another job holds its devices); stop with :meth:`stop`
    (first call: the child saves a checkpoint and exits within one optimizer step; second call: it is killed)."""

    outlives_session = True

    def __init__(
        self, config: AppConfig, slots: DeviceSlots, data: PreparedData | None, settings: TrainSettings | None,
        base_model: str, name: str = "", num_threads: int | None = None,
        hardware: HardwareSettings | None = None, control: ControlSettings | None = None,
    ) -> None:
        super().__init__()
        self.config, self.slots, self.data, self.settings = config, slots, data, settings
        self.base_model, self.name = base_model, name.strip()[:80]
        self.hardware, self.control = hardware or HardwareSettings(), control or ControlSettings()
        self.num_threads = num_threads
        self.run_id = new_run_id(self.name)
        self.mode = "new"  # new, resume or attach
        self.folder = tmp_folder(config.runs_dir, self.run_id)
        self.state = JobState(self.run_id, data.task if data else "")
        self._state_lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.record: dict[str, Any] = {}
        self.stop_requests = 0
        self.killed = False
        self.replayed = 0
        self._holds_lock = False

    @property
    def thread_name(self) -> str:  # type: ignore[override]
        return f"train-{self.run_id}"

    # ---- the other ways in: resume a run, follow a child that already runs ----------------------------
    @classmethod
    def resume(cls, config: AppConfig, slots: DeviceSlots, run: RunInfo,
               hardware: HardwareSettings | None = None) -> TrainingJob:
        """A job that continues ``run`` (stopped, failed or interrupted) from its last checkpoint."""
        from pipelines.training.checkpoints import latest

        if run.status not in (RunStatus.STOPPED, RunStatus.FAILED) or latest(run.path) is None:
            raise InputError("training.not_resumable", run=run.id)
        spec = RunSpec.read(run.path)
        job = cls(config, slots, read_data(run.path), spec.settings, spec.base_model, spec.name,
                  hardware=hardware or spec.hardware, control=spec.control)
        job.run_id, job.mode, job.folder = run.id, "resume", run.path
        job.state = replay(run.path / LOG_FILE, JobState(run.id, spec.task))
        job.replayed = job.state.version  # one version per record: the follower skips these
        return job

    @classmethod
    def attach(cls, config: AppConfig, slots: DeviceSlots, folder: Path) -> TrainingJob:
        """A job that follows the child already training in ``folder`` (after an app restart)."""
        meta = read_meta(folder)
        job = cls(config, slots, None, None, str(meta.get("base_model", "")), str(meta.get("name", "")))
        job.run_id, job.mode, job.folder = str(meta.get("id", folder.name)), "attach", Path(folder)
        job.record = launch.read_process(folder)
        job.state = JobState(job.run_id, str(meta.get("task", "")))
        return job

    # ---- control --------------------------------------------------------------------------------------
    def start(self) -> TrainingJob:
        launch_plan: LaunchPlan | None = None
        if self.mode == "attach":
            devices = recorded_devices(RunSpec.read(self.folder).plan)  # what the running child was started on
        else:
            launch_plan, blocker = self.slots.plan_for(self.hardware, threads=self.num_threads)
            if blocker is not None:
                raise BusyError("training.busy")
            devices = plan_devices(launch_plan)
        if self.slots.claim(devices, self.run_id) is not None:
            raise BusyError("training.busy")
        self._holds_lock = True
        try:
            if launch_plan is not None:
                self._launch(launch_plan)
            super().start()
        except BaseException:
            self._release_lock()
            raise
        return self

    def _launch(self, launch_plan: LaunchPlan) -> None:
        """Write the run folder (new) or move it back to ``.<id>.tmp`` (resume), then start the child."""
        events = EventLog(self.folder)
        if self.mode == "new":
            spec = RunSpec(self.run_id, self.data.task, self.base_model, base_location(self.base_model, self.config),
                           self.name, self.settings, self.hardware, self.control, launch_plan.to_dict(),
                           self.config.allow_pickle_weights)
            RunWriter(self.config.runs_dir, self.run_id, {
                "task": self.data.task, "base_model": self.base_model, "name": self.name or self.run_id,
                "labels": self.data.labels, "settings": self.settings.to_dict(), "data": self.data.report.to_dict(),
                "hardware": self.hardware.to_dict(), "launched": True,
            })
            spec.write(self.folder, self.data)
        else:
            spec = RunSpec.read(self.folder)
            spec.hardware, spec.plan = self.hardware, launch_plan.to_dict()
            tmp = tmp_folder(self.config.runs_dir, self.run_id)
            self.folder.rename(tmp)
            self.folder = events.folder = tmp
            spec.write(tmp)
            update_meta(tmp, status=RunStatus.RUNNING, error="", error_key="", error_params={}, resumable=False,
                        log_tail=[], hardware=self.hardware.to_dict(), launched=True)
            (tmp / "STOP").unlink(missing_ok=True)
        command = launch.write_files(launch_plan, self.folder, self.run_id, self.config.runs_dir / self.run_id)
        events.log(Msg.of("training.log.command", command=command))
        self.proc = launch.start(launch_plan, self.folder, resume=self.mode == "resume")
        self.record = launch.read_process(self.folder)
        self._update(status=RunStatus.STARTING)

    def stop(self) -> None:
        """First call: ask the child to save a checkpoint and exit; a second call kills it."""
        self.stop_event.set()
        self.stop_requests += 1
        try:
            if self.stop_requests == 1:
                (self.folder / "STOP").touch()
                self._line(Msg("training.log.stop_requested"))
            else:
                self.killed = True
                launch.kill(self.record, self.folder)
                self._line(Msg("training.log.killed"))
        except OSError:  # the run folder was just renamed into place: the run has ended
            pass

    def snapshot(self) -> JobState:
        with self._state_lock:
            return copy.deepcopy(self.state)

    def _update(self, **fields: Any) -> None:
        with self._state_lock:
            for key, value in fields.items():
                setattr(self.state, key, value)
            self.state.version += 1

    def _line(self, message: Msg) -> None:
        with self._state_lock:
            self.state.add_line(message)
            self.state.version += 1

    # ---- the follower -----------------------------------------------------------------------------------
    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is None:
            return True
        return self.folder.is_dir() and launch.run_alive(self.folder)  # workers outliving their launcher

    def _apply(self, records: list[dict]) -> None:
        if records:
            with self._state_lock:
                for record in records:
                    apply(self.state, record)

    def work(self) -> None:
        tail = EventTail(self.folder / LOG_FILE)
        try:
            self._apply(tail.read()[self.replayed:])  # a resumed run's state already holds the earlier records
            while self._alive():
                self._apply(tail.read())
                time.sleep(POLL_S)
            self._apply(tail.read())
            self._conclude()
        finally:
            tail.close()

    def _conclude(self) -> None:
        """After the child exited: take the finished run's record, or mark the run failed (resumable)."""
        final = self.config.runs_dir / self.run_id
        st = self.snapshot()
        if st.terminal and st.status != RunStatus.FAILED and final.is_dir():
            meta = read_meta(final)
            self._update(status=RunStatus.parse(meta.get("status")), metrics=dict(meta.get("metrics") or st.metrics))
            return
        code = self.proc.returncode if self.proc is not None else None
        prefer = Msg.of("training.killed", step=st.step) if self.killed else None
        crash = crash_message(code, self.folder if self.folder.is_dir() else final)
        if self.folder.is_dir():
            finalize_dead(self.folder, crash, prefer=prefer)
        info = RunStore(self.config.runs_dir).find(self.run_id)
        message = info.error_msg or crash
        with self._state_lock:
            self.state.status, self.state.error, self.state.error_msg = RunStatus.FAILED, str(message), message
            self.state.resumable = info.resumable
            if not self.state.log or self.state.log[-1].message != message:
                self.state.add_line(message)
            for line in info.log_tail[-3:] if not st.terminal else []:
                self.state.add_line(Msg.of("training.log.output", line=line))
            self.state.version += 1

    def cleanup(self) -> None:
        self._release_lock()

    def _release_lock(self) -> None:
        if self._holds_lock:
            self._holds_lock = False
            self.slots.release(self.run_id)
