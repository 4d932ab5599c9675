"""The run store: run folders on disk (``run.json``, ``adapter/``, ``tokenizer/``, ``log.jsonl``), listed, found,
zipped, merged into a full model and deleted. Runs being written live in ``.<id>.tmp`` (see ``writer.py``)."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import InputError, ModelLoadError
from pipelines.messages import Msg
from pipelines.training.enums import TASK_KINDS, USABLE, RunStatus, TrainTask

TMP_SUFFIX = ".tmp"
INTERRUPTED_KEY = "training.interrupted"
INTERRUPTED = str(Msg(INTERRUPTED_KEY))  # the English text kept in run.json's "error"
OWNERS_DIR = ".owners"  # one file per run naming its owner (a dot folder: never listed as a run)
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass
class RunInfo:
    """Metadata of one fine-tuning run."""

    id: str
    path: Path
    task: str  # a TrainTask value
    base_model: str
    status: RunStatus = RunStatus.COMPLETE
    labels: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    created: str = ""
    name: str = ""
    settings: dict = field(default_factory=dict)
    error: str = ""  # English, for logs and the API
    error_key: str = ""  # the locale key of ``error`` (runs written before keys have none)
    error_params: dict = field(default_factory=dict)
    resumable: bool = False  # a stopped or failed run with a checkpoint to continue from
    log_tail: list[str] = field(default_factory=list)  # the last lines its training process printed (failed runs)
    owner: str = ""  # the user who made it (with login, ``LMW_USERS``); empty: made without login

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def kind(self) -> str:
        return dict(TASK_KINDS).get(self.task, "causal-lm")

    @property
    def reference(self) -> str:
        return f"run:{self.id}"

    @property
    def label(self) -> str:
        return str(self.label_msg)

    @property
    def label_msg(self) -> Msg:
        """``<name> (adapter on <base>)`` as a translatable message, for model pickers."""
        return Msg.of("training.run_label", name=self.name or self.id, base=self.base_model)

    @property
    def error_msg(self) -> Msg | None:
        """The error as a translatable message (None when there is none)."""
        if self.error_key:
            return Msg(self.error_key, dict(self.error_params))
        if self.error == INTERRUPTED:  # marked by an older version, before errors had keys
            return Msg(INTERRUPTED_KEY)
        return Msg.of("training.error_text", text=self.error) if self.error else None


def tmp_folder(root: Path, run_id: str) -> Path:
    """Where a run is written until it is complete (dot folders are never listed)."""
    return Path(root) / f".{run_id}{TMP_SUFFIX}"


def check_run_id(run_id: str | None) -> str:
    """``run_id``, or :class:`InputError` ("pick a run first") when empty, ModelLoadError when malformed."""
    if not (run_id or "").strip() or run_id == "None":
        raise InputError("training.pick_run")
    if not RUN_ID.match(run_id):
        raise ModelLoadError("training.bad_run_id", run=run_id[:100])
    return run_id


def read_info(folder: Path) -> RunInfo | None:
    """The run in ``folder``, or None when it has no readable ``run.json``."""
    try:
        meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return RunInfo(
        id=folder.name, path=folder, task=str(meta.get("task", TrainTask.CAUSAL_LM)),
        base_model=meta.get("base_model", ""), status=RunStatus.parse(meta.get("status", "complete")),
        labels=list(meta.get("labels", [])), metrics=dict(meta.get("metrics", {})),
        created=meta.get("created", ""), name=meta.get("name", ""), settings=dict(meta.get("settings", {})),
        error=str(meta.get("error", "") or ""), error_key=str(meta.get("error_key", "") or ""),
        error_params=dict(meta.get("error_params", {}) or {}), resumable=bool(meta.get("resumable", False)),
        log_tail=list(meta.get("log_tail", []) or []),
    )


class RunStore:
    """Runs in a folder: list, find, get (usable only), zip, merge, delete.

    With login each run has an owner (``.owners/<id>`` beside the runs); every method taking ``user`` shows and
    gives only that user's runs (``admins`` see all). ``user`` None (no login) checks nothing."""

    def __init__(self, root: Path, admins: frozenset[str] = frozenset()) -> None:
        self.root = Path(root)
        self.admins = admins

    def path_for(self, run_id: str) -> Path:
        return self.root / check_run_id(run_id)

    # ---- owners -------------------------------------------------------------------------------------------------
    def _owner_file(self, run_id: str) -> Path:
        return self.root / OWNERS_DIR / check_run_id(run_id)

    def set_owner(self, run_id: str, user: str | None) -> None:
        """Record ``user`` as the owner of ``run_id`` (nothing without login)."""
        if user:
            self._owner_file(run_id).parent.mkdir(parents=True, exist_ok=True)
            self._owner_file(run_id).write_text(user, encoding="utf-8")

    def owner_of(self, run_id: str) -> str:
        try:
            return self._owner_file(run_id).read_text(encoding="utf-8").strip()
        except (OSError, ValueError):
            return ""

    def visible(self, run_id: str, user: str | None) -> bool:
        """Whether ``user`` may list and use ``run_id`` (always without login; else its owner or an admin)."""
        from pipelines.users import can_see

        return can_see(self.owner_of(run_id) if user is not None else "", user, self.admins)

    def check_owner(self, run_id: str, user: str | None) -> None:
        """:class:`ModelLoadError` when ``user`` may not use ``run_id``."""
        if not self.visible(run_id, user):
            raise ModelLoadError("users.error.not_yours", run=run_id)

    def owned_by(self, user: str) -> list[str]:
        """The ids of ``user``'s runs, in-progress ones included."""
        folder = self.root / OWNERS_DIR
        ids = [f.name for f in folder.iterdir() if f.is_file()] if folder.is_dir() else []
        return [i for i in ids if RUN_ID.match(i) and self.folder_of(i).is_dir() and self.owner_of(i) == user]

    def in_progress(self, run_id: str) -> bool:
        """Whether ``run_id`` is being written (training) now."""
        return not self.path_for(run_id).exists() and tmp_folder(self.root, run_id).is_dir()

    def folder_of(self, run_id: str) -> Path:
        """The run's folder, or its in-progress folder while it trains."""
        path = self.path_for(run_id)
        return path if path.exists() else tmp_folder(self.root, run_id)

    # ---- runs ---------------------------------------------------------------------------------------------------
    def list(self, status: str | tuple[str, ...] | None = USABLE, user: str | None = None) -> list[RunInfo]:
        """Runs, newest first, with ``status`` (one or several; None: all); dot folders are in-progress writes."""
        if not self.root.is_dir():
            return []
        runs = [info for folder in self.root.iterdir()
                if folder.is_dir() and not folder.name.startswith(".") if (info := read_info(folder)) is not None]
        if status:
            wanted = (status,) if isinstance(status, str) else status
            runs = [r for r in runs if r.status in wanted]
        for run in runs:
            run.owner = self.owner_of(run.id)
        if user is not None:
            from pipelines.users import can_see

            runs = [r for r in runs if can_see(r.owner, user, self.admins)]
        return sorted(runs, key=lambda r: (r.created, r.id), reverse=True)

    def find(self, run_id: str, user: str | None = None) -> RunInfo:
        """A run of any status (complete, failed, stopped); dot folders (in-progress writes) are never found."""
        info = None if (run_id or "").startswith(".") else read_info(self.path_for(run_id))
        if info is None:
            raise ModelLoadError("training.no_run", run=run_id)
        info.owner = self.owner_of(info.id)
        self.check_owner(info.id, user)
        return info

    def get(self, run_id: str, user: str | None = None) -> RunInfo:
        """A complete (or stopped, with its last saved adapter) run whose adapter can be loaded."""
        info = self.find(run_id, user)
        if info.status not in USABLE:
            raise ModelLoadError("training.run_unusable", run=run_id, status=Msg.of(f"training.status.{info.status}"))
        if not info.adapter_dir.is_dir():
            raise ModelLoadError("training.no_adapter", run=run_id)
        return info

    def zip(self, run_id: str, user: str | None = None) -> Path:
        """A zip of the whole run folder, written to a fresh temporary folder."""
        run = self.find(run_id, user)
        out = Path(tempfile.mkdtemp(prefix="lmw-run-")) / f"{run.id}.zip"
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(run.path.rglob("*")):
                if file.is_file():
                    zf.write(file, Path(run.id) / file.relative_to(run.path))
        return out

    def delete(self, run_id: str, user: str | None = None) -> RunInfo:
        run = self.find(run_id, user)
        shutil.rmtree(run.path)
        self._owner_file(run.id).unlink(missing_ok=True)
        return run

    def merge(self, run_id: str, models_dir: Path, base_location: str, allow_pickle: bool = False,
              user: str | None = None) -> Path:
        """Merge the LoRA weights into the base model and save a full safetensors folder under ``models_dir``."""
        import transformers
        from peft import PeftModel

        run = self.get(run_id, user)
        target = Path(models_dir) / f"{run.id}-merged"
        if target.exists():
            raise InputError("training.merged_exists", path=str(target))
        kwargs: dict[str, Any] = {"use_safetensors": None if allow_pickle else True}
        if run.task == TrainTask.CLASSIFICATION:
            auto = transformers.AutoModelForSequenceClassification
            kwargs.update(num_labels=len(run.labels), id2label=dict(enumerate(run.labels)),
                          label2id={label: i for i, label in enumerate(run.labels)}, ignore_mismatched_sizes=True)
        else:  # a causal LM, or the plain encoder of a masked-LM domain run (its adapter sits on the encoder)
            auto = transformers.AutoModel if run.kind == "encoder" else transformers.AutoModelForCausalLM
        base = auto.from_pretrained(base_location, **kwargs)
        merged = PeftModel.from_pretrained(base, str(run.adapter_dir)).merge_and_unload()
        tok_dir = run.path / "tokenizer" if (run.path / "tokenizer").is_dir() else base_location
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(tok_dir))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            merged.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target


def zip_run(store: RunStore, run_id: str) -> Path:
    return store.zip(run_id)


def delete_run(store: RunStore, run_id: str) -> RunInfo:
    return store.delete(run_id)


def merge_run(store: RunStore, run_id: str, models_dir: Path, base_location: str, allow_pickle: bool = False) -> Path:
    return store.merge(run_id, models_dir, base_location, allow_pickle)


def recover_interrupted(root: Path) -> list[str]:
    """Mark runs whose training process is gone (``.<id>.tmp`` folders) as failed; returns their ids.

    A folder whose training child still runs is left alone (the app re-attaches to it). The partial adapter is
    removed; ``run.json``, ``log.jsonl`` and the checkpoints stay, so the run can be resumed. Complete runs are
    never touched.
    """
    from pipelines.training.recovery import finalize_dead, legacy_writer_alive, live_child
    from pipelines.training.writer import read_meta

    root = Path(root)
    recovered: list[str] = []
    if not root.is_dir():
        return recovered
    for tmp in root.glob(f".*{TMP_SUFFIX}"):
        run_id = tmp.name[1 : -len(TMP_SUFFIX)]
        if not RUN_ID.match(run_id) or (root / run_id).exists():
            continue
        if live_child(tmp) or legacy_writer_alive(read_meta(tmp)):
            continue
        finalize_dead(tmp, Msg(INTERRUPTED_KEY), drop_adapter=True)
        recovered.append(run_id)
    return recovered
