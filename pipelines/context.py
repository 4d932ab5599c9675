"""The one small object shared by all tabs: configuration, model manager and runs."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pipelines.config import AppConfig
from pipelines.models import EMBEDDED, ModelManager
from pipelines.runs import RunStore, recover_interrupted
from pipelines.tables import Table, read_table
from pipelines.uploads import checked_upload

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".json")

# GPU/CPU-heavy events share this concurrency id so they queue instead of competing.
HEAVY = "heavy"


@dataclass
class AppContext:
    """Shared services; per-user data lives in ``gr.State``, not here."""

    config: AppConfig
    manager: ModelManager
    runs: RunStore
    training_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, config: AppConfig | None = None) -> AppContext:
        config = config or AppConfig.from_env()
        config.ensure_dirs()
        recover_interrupted(config.runs_dir)
        return cls(config=config, manager=ModelManager(config), runs=RunStore(config.runs_dir))

    def model_choices(self, kinds: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        """(label, reference) pairs for model pickers: embedded models, then complete runs.

        ``kinds`` filters by model kind (e.g. ``("causal-lm",)``); empty means all.
        """
        choices = [
            (f"{m.name} (embedded)", m.name)
            for m in EMBEDDED.values()
            if m.fmt != "spacy" and (not kinds or m.default_kind in kinds or "any" in kinds)
        ]
        for run in self.runs.list():
            if not kinds or run.kind in kinds or "any" in kinds:
                choices.append((run.label, run.reference))
        return choices

    def read_upload(self, upload: object) -> Table:
        """Read an uploaded table: it must be an upload of this app (Gradio's temp dir), of a table type, and
        within the size and row limits; raises ``InputError`` with one clear sentence otherwise."""
        max_bytes = self.config.max_upload_mb * 2**20
        path = checked_upload(upload, TABLE_SUFFIXES, max_bytes)
        return read_table(path, max_bytes=max_bytes, max_rows=self.config.max_rows)
