"""Fine-tuning runs on disk: each run is a folder with ``run.json`` and an ``adapter/`` folder."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.errors import ModelLoadError

TMP_SUFFIX = ".tmp"
USABLE = ("complete", "stopped")  # statuses whose saved adapter can be loaded
INTERRUPTED = "interrupted: the app stopped before this run finished; its adapter was not saved."
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TASK_KINDS = {"classification": "seq-cls", "causal-lm": "causal-lm"}


@dataclass
class RunInfo:
    """Metadata of one fine-tuning run."""

    id: str
    path: Path
    task: str  # "classification" or "causal-lm"
    base_model: str
    status: str = "complete"  # complete, running, failed, stopped
    labels: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    created: str = ""
    name: str = ""
    settings: dict = field(default_factory=dict)
    error: str = ""

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def kind(self) -> str:
        return TASK_KINDS.get(self.task, "causal-lm")

    @property
    def reference(self) -> str:
        return f"run:{self.id}"

    @property
    def label(self) -> str:
        return f"{self.name or self.id} (adapter on {self.base_model})"


def tmp_folder(root: Path, run_id: str) -> Path:
    """Where a run is written until it is complete (dot folders are never listed)."""
    return Path(root) / f".{run_id}{TMP_SUFFIX}"


class RunStore:
    """Reads runs from a folder. Only runs with status ``complete`` are usable as models."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, run_id: str) -> Path:
        if not RUN_ID.match(run_id or ""):
            raise ModelLoadError(f"'{run_id}' is not a valid run id.")
        return self.root / run_id

    def _read(self, folder: Path) -> RunInfo | None:
        meta_file = folder / "run.json"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return RunInfo(
            id=folder.name,
            path=folder,
            task=meta.get("task", "causal-lm"),
            base_model=meta.get("base_model", ""),
            status=meta.get("status", "complete"),
            labels=list(meta.get("labels", [])),
            metrics=dict(meta.get("metrics", {})),
            created=meta.get("created", ""),
            name=meta.get("name", ""),
            settings=dict(meta.get("settings", {})),
            error=str(meta.get("error", "") or ""),
        )

    def list(self, status: str | tuple[str, ...] | None = USABLE) -> list[RunInfo]:
        """Runs, newest first, with ``status`` (one or several; None: all); dot folders are in-progress writes."""
        if not self.root.is_dir():
            return []
        runs = [
            info
            for folder in self.root.iterdir()
            if folder.is_dir() and not folder.name.startswith(".")
            if (info := self._read(folder)) is not None
        ]
        if status:
            wanted = (status,) if isinstance(status, str) else status
            runs = [r for r in runs if r.status in wanted]
        return sorted(runs, key=lambda r: (r.created, r.id), reverse=True)

    def find(self, run_id: str) -> RunInfo:
        """A run of any status (complete, failed, stopped); dot folders (in-progress writes) are never found."""
        info = None if (run_id or "").startswith(".") else self._read(self.path_for(run_id))
        if info is None:
            raise ModelLoadError(f"No fine-tuning run named '{run_id}' was found.")
        return info

    def get(self, run_id: str) -> RunInfo:
        """A complete (or stopped, with its last saved adapter) run whose adapter can be loaded."""
        info = self.find(run_id)
        if info.status not in USABLE:
            raise ModelLoadError(f"Run '{run_id}' is {info.status}, not complete, so its adapter cannot be used.")
        if not info.adapter_dir.is_dir():
            raise ModelLoadError(f"Run '{run_id}' has no adapter folder.")
        return info


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(root: Path) -> list[str]:
    """Mark runs left half-written by a killed app (``.<id>.tmp`` folders) as failed; returns their ids.

    A folder whose writing process is still alive is left alone. The partial adapter is removed; ``run.json``
    and ``log.jsonl`` stay so the user can see what happened. Complete runs are never touched.
    """
    root = Path(root)
    recovered = []
    if not root.is_dir():
        return recovered
    for tmp in root.glob(f".*{TMP_SUFFIX}"):
        run_id = tmp.name[1 : -len(TMP_SUFFIX)]
        meta_file = tmp / "run.json"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {"id": run_id}
        # Called at start-up, before this process trains: a live writer is another process still training.
        pid = meta.get("pid")
        if (pid != os.getpid() and _pid_alive(pid)) or not RUN_ID.match(run_id):
            continue
        final = root / run_id
        if final.exists():
            continue
        shutil.rmtree(tmp / "adapter", ignore_errors=True)
        meta.update(status="failed", error=INTERRUPTED)
        meta_file.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.rename(final)
        recovered.append(run_id)
    return recovered
