"""Writing one run: into ``runs_dir/.<id>.tmp`` while it trains, renamed into place when it ends."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import threading
from pathlib import Path
from typing import Any

from pipelines.errors import InputError
from pipelines.training.enums import RunStatus
from pipelines.training.store import RUN_ID, TMP_SUFFIX, RunInfo, tmp_folder


def new_run_id(name: str = "") -> str:
    """``<yyyymmdd-hhmmss>-<slug>-<random>``: sortable, unique, valid as a folder name and a ``run:`` id."""
    slug = re.sub(r"[^a-z0-9]+", "-", (name or "").lower()).strip("-")[:30] or "run"
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{slug}-{secrets.token_hex(2)}"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RunWriter:
    """Writes one run: ``run.json``, ``log.jsonl``, ``adapter/``, ``tokenizer/``; renamed into place at the end."""

    def __init__(self, root: Path, run_id: str, meta: dict[str, Any]) -> None:
        if not RUN_ID.match(run_id):
            raise InputError("training.bad_run_id", run=run_id[:100])
        self.root = Path(root)
        self.run_id = run_id
        self.final = self.root / run_id
        self.tmp = tmp_folder(self.root, run_id)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir()
        self.folder = self.tmp  # where files go now: the temporary folder, then the final one
        self.meta = {
            "id": run_id, "status": RunStatus.RUNNING, "created": now_iso(), "metrics": {}, "labels": [],
            "pid": os.getpid(), **meta,
        }
        self._lock = threading.Lock()
        self._write_meta()

    def _write_meta(self) -> None:
        target = self.folder / "run.json"
        part = self.folder / "run.json.part"
        part.write_text(json.dumps(self.meta, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        part.replace(target)

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``log.jsonl``."""
        with self._lock, open(self.folder / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    def update(self, **fields: Any) -> None:
        self.meta.update(fields)
        self._write_meta()

    def finish(self, status: RunStatus, model: Any = None, tokenizer: Any = None, **fields: Any) -> Path:
        """Save adapter and tokenizer (if given), write the final ``run.json`` and rename into place."""
        if self.folder == self.final:
            raise RuntimeError("run already finished")  # a programming error, never shown to a user
        if model is not None:
            model.save_pretrained(str(self.tmp / "adapter"), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(self.tmp / "tokenizer"))
        self.meta.update(fields, status=status, finished=now_iso())
        self._write_meta()
        with self._lock:
            self.tmp.rename(self.final)
            self.folder = self.final
        return self.final

    def abandon(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def read_log(run: RunInfo, limit: int = 10_000) -> list[dict]:
    """The records of a run's ``log.jsonl`` (unreadable lines skipped)."""
    path = run.path / "log.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines()[:limit]:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def read_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(folder) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    """Replace ``run.json`` atomically."""
    part = Path(folder) / "run.json.part"
    part.write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    part.replace(Path(folder) / "run.json")


def update_meta(folder: Path, **fields: Any) -> dict[str, Any]:
    meta = {**read_meta(folder), **fields}
    write_meta(folder, meta)
    return meta


def is_tmp(folder: Path) -> bool:
    return folder.name.startswith(".") and folder.name.endswith(TMP_SUFFIX)


def move_into_place(folder: Path) -> Path:
    """Rename ``.<id>.tmp`` to ``<id>`` (other folders stay where they are); returns the final folder."""
    folder = Path(folder)
    if not is_tmp(folder):
        return folder
    final = folder.with_name(folder.name[1:-len(TMP_SUFFIX)])
    folder.rename(final)
    return final
