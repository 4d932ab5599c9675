"""The one object shared by all tabs: configuration, model manager, runs, and every per-session job.

Nothing else in ``pipelines/`` or ``components/`` keeps mutable state at module level: compute threads,
precision decisions and session jobs all hang off this context (``tests/test_house.py`` checks it).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipelines.config import AppConfig
from pipelines.keyed_text import KeyedText
from pipelines.limits import Limits
from pipelines.models import EMBEDDED, ModelManager
from pipelines.models.warmup import Warmup
from pipelines.sessions import Sessions
from pipelines.tables import Table, read_table
from pipelines.training.store import RunStore, recover_interrupted
from pipelines.uploads import checked_upload

if TYPE_CHECKING:
    from pipelines.engines.remote import Backends
    from pipelines.generation.service import GenerationService
    from pipelines.generation.threads import ComputeThread
    from pipelines.tasks.precision import DecisionStore

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".json")

# GPU/CPU-heavy events share this concurrency id so they queue instead of competing.
HEAVY = "heavy"


@dataclass
class AppContext:
    """Shared services and per-session jobs (``sessions``); per-user UI data lives in ``gr.State``."""

    config: AppConfig
    manager: ModelManager
    runs: RunStore
    sessions: Sessions = field(default_factory=Sessions)
    training_lock: threading.Lock = field(default_factory=threading.Lock)
    warmup: Warmup | None = None  # the start-up preparation (``start_warmup``); None until created

    @classmethod
    def create(cls, config: AppConfig | None = None) -> AppContext:
        config = config or AppConfig.from_env()
        config.ensure_dirs()
        recover_interrupted(config.runs_dir)
        ctx = cls(config=config, manager=ModelManager(config), runs=RunStore(config.runs_dir))
        ctx.warmup = Warmup(config)
        ctx.manager.gate = ctx.warmup.gate  # a load of an embedded model waits for the preparation
        return ctx

    def start_warmup(self) -> None:
        """Prepare the embedded models in the background (after the page is served); off with LMW_WARMUP=0."""
        warmup = self.warmup
        if warmup is not None and self.config.warmup and warmup.state == "pending" and not warmup.running:
            warmup.start()

    @property
    def limits(self) -> Limits:
        return self.config.limits

    @functools.cached_property
    def compute(self) -> ComputeThread:
        """The one long-lived generation compute thread (created at first use)."""
        from pipelines.generation.threads import ComputeThread

        return ComputeThread()

    @functools.cached_property
    def generation(self) -> GenerationService:
        """The one generation service (local engines, remote endpoints) shared by every tab and the API."""
        from pipelines.generation.service import GenerationService

        return GenerationService(self)

    @functools.cached_property
    def backends(self) -> Backends:
        """Remote OpenAI-compatible endpoints (``LMW_BACKENDS`` plus those added at run time)."""
        from pipelines.engines.config import EnginesConfig
        from pipelines.engines.remote import Backends

        return Backends(EnginesConfig.of(self.config))

    @functools.cached_property
    def decisions(self) -> DecisionStore:
        """Auto-precision decisions per model, shared by every session (created at first use)."""
        from pipelines.tasks.precision import DecisionStore

        return DecisionStore()

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
                choices.append((KeyedText(run.label_msg), run.reference))  # English str, translatable
        return choices

    def read_upload(self, upload: object) -> Table:
        """Read an uploaded table: it must be an upload of this app (Gradio's temp dir), of a table type, and
        within the size and row limits; raises ``InputError`` with one clear sentence otherwise."""
        max_bytes = self.config.max_upload_mb * 2**20
        path = checked_upload(upload, TABLE_SUFFIXES, max_bytes)
        return read_table(path, max_bytes=max_bytes, max_rows=self.config.max_rows)
