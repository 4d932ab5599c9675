"""Run folders on disk: write into ``runs_dir/.<id>.tmp`` and rename when done; zip, merge, delete."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from pipelines.errors import InputError
from pipelines.runs import RUN_ID, RunInfo, RunStore, tmp_folder


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
            raise InputError(f"'{run_id}' is not a valid run id.")
        self.root = Path(root)
        self.run_id = run_id
        self.final = self.root / run_id
        self.tmp = tmp_folder(self.root, run_id)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir()
        self.folder = self.tmp  # where files go now: the temporary folder, then the final one
        self.meta = {
            "id": run_id, "status": "running", "created": now_iso(), "metrics": {}, "labels": [],
            "pid": os.getpid(), **meta,
        }
        self._lock = threading.Lock()
        self._write_meta()

    def _write_meta(self) -> None:
        target = self.folder / "run.json"
        part = self.folder / "run.json.part"
        part.write_text(json.dumps(self.meta, indent=2, ensure_ascii=False), encoding="utf-8")
        part.replace(target)

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``log.jsonl``."""
        with self._lock, open(self.folder / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def update(self, **fields: Any) -> None:
        self.meta.update(fields)
        self._write_meta()

    def finish(self, status: str, model: Any = None, tokenizer: Any = None, **fields: Any) -> Path:
        """Save adapter and tokenizer (if given), write the final ``run.json`` and rename into place."""
        if self.folder == self.final:
            raise RuntimeError(f"Run {self.run_id} is already finished.")
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


def zip_run(store: RunStore, run_id: str) -> Path:
    """A zip of the whole run folder, written to a fresh temporary folder."""
    run = store.find(run_id)
    out = Path(tempfile.mkdtemp(prefix="lmw-run-")) / f"{run.id}.zip"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(run.path.rglob("*")):
            if file.is_file():
                zf.write(file, Path(run.id) / file.relative_to(run.path))
    return out


def delete_run(store: RunStore, run_id: str) -> None:
    run = store.find(run_id)
    shutil.rmtree(run.path)


def merge_run(store: RunStore, run_id: str, models_dir: Path, base_location: str, allow_pickle: bool = False) -> Path:
    """Merge the LoRA weights into the base model and save a full safetensors folder under ``models_dir``."""
    import transformers
    from peft import PeftModel

    run = store.get(run_id)
    target = Path(models_dir) / f"{run.id}-merged"
    if target.exists():
        raise InputError(f"A merged model already exists at {target}; delete it first to merge again.")
    kwargs: dict[str, Any] = {"use_safetensors": None if allow_pickle else True}
    if run.task == "classification":
        auto = transformers.AutoModelForSequenceClassification
        kwargs.update(num_labels=len(run.labels), id2label=dict(enumerate(run.labels)),
                      label2id={label: i for i, label in enumerate(run.labels)}, ignore_mismatched_sizes=True)
    else:
        auto = transformers.AutoModelForCausalLM
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
