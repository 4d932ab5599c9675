"""The one object shared by all tabs: configuration, model manager, runs, and every per-session job.

Nothing else in ``pipelines/`` or ``components/`` keeps mutable state at module level: compute threads,
precision decisions and session jobs all hang off this context (``tests/test_house.py`` checks it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipelines.config import AppConfig
from pipelines.keyed_text import KeyedText
from pipelines.limits import Limits
from pipelines.messages import Msg
from pipelines.models import EMBEDDED, ModelManager
from pipelines.models.merged import merged_models
from pipelines.models.refs import run_store
from pipelines.models.warmup import Warmup
from pipelines.sessions import Sessions
from pipelines.tables import Table, read_table
from pipelines.training.slots import DeviceSlots
from pipelines.training.store import RunStore, recover_interrupted
from pipelines.uploads import checked_upload

if TYPE_CHECKING:
    from pipelines.engines.remote import Backends
    from pipelines.generation.batcher import DecodeBatcher
    from pipelines.generation.service import GenerationService
    from pipelines.generation.threads import ComputeThread
    from pipelines.quotas import Quotas
    from pipelines.result_cache import ResultCache
    from pipelines.tasks.microbatch import MicroBatcher
    from pipelines.tasks.precision import DecisionStore
    from pipelines.users import Users

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".json")

# GPU/CPU-heavy events share this concurrency id so they queue instead of competing.
HEAVY = "heavy"
# Generations run together (as many as one batched decoding step carries): the decode batcher shares their steps on
# the transformers engine, and the compute thread runs llama.cpp's one at a time.
GENERATION = "generation"


def generation_limit(ctx: AppContext) -> int:
    """How many generation events run at once: the decode batch size, or 1 with batching off."""
    batching = ctx.config.decode_batching
    return batching.max_batch if batching.enabled else 1


@dataclass
class AppContext:
    """Shared services and per-session jobs (``sessions``); per-user UI data lives in ``gr.State``."""

    config: AppConfig
    manager: ModelManager
    runs: RunStore
    sessions: Sessions = field(default_factory=Sessions)
    training_slots: DeviceSlots = field(default_factory=DeviceSlots)  # which run trains on which device
    warmup: Warmup | None = None  # the start-up preparation (``start_warmup``); None until created

    @classmethod
    def create(cls, config: AppConfig | None = None) -> AppContext:
        config = config or AppConfig.from_env()
        config.ensure_dirs()
        recover_interrupted(config.runs_dir)
        ctx = cls(config=config, manager=ModelManager(config), runs=run_store(config))
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
    def decode_batcher(self) -> DecodeBatcher:
        """Steps concurrent generations on one model together, in the compute thread (``LMW_BATCHING=0``: off)."""
        from pipelines.generation.batcher import DecodeBatcher

        return DecodeBatcher(self.compute, self.config.decode_batching)

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

    @functools.cached_property
    def results(self) -> ResultCache:
        """Large per-session results (attention weights) under one byte budget; a session's go when it ends."""
        from pipelines.result_cache import ResultCache

        cache = ResultCache(self.config.result_cache_mb * 2**20, self.config.result_idle_s)
        self.sessions.on_end(cache.end)
        return cache

    @functools.cached_property
    def batcher(self) -> MicroBatcher:
        """Runs concurrent classify, embedding and attention requests on one model in one forward pass."""
        from pipelines.tasks.microbatch import MicroBatcher

        return MicroBatcher(self.config.microbatch_window_ms / 1000, self.config.microbatch_max)

    @functools.cached_property
    def users(self) -> Users:
        """Logins and API keys (``LMW_USERS``, ``LMW_API_KEYS``); with logins, runs are their owner's."""
        from pipelines.users import users_of

        return users_of(self.config)

    @functools.cached_property
    def quotas(self) -> Quotas:
        """What one user may hold or start at a time (``LMW_QUOTA_*``; checked only with login)."""
        from pipelines.quotas import Quotas

        return Quotas.from_env()

    def model_choices(self, kinds: tuple[str, ...] = (), user: str | None = None) -> list[tuple[str, str]]:
        """(label, reference) pairs for model pickers: embedded models, complete runs, then the merged models the
        Fine-tune tab wrote into the models folder.

        ``kinds`` filters by model kind (e.g. ``("causal-lm",)``); empty means all.
        """
        choices = [
            (f"{m.name} (embedded)", m.name)
            for m in EMBEDDED.values()
            if m.fmt != "spacy" and (not kinds or m.default_kind in kinds or "any" in kinds)
        ]
        for run in self.runs.list(user=user):  # with login: the user's runs only (an admin's: all)
            if not kinds or run.kind in kinds or "any" in kinds:
                choices.append((KeyedText(run.label_msg), run.reference))  # English str, translatable
        for model in merged_models(self.config.models_dir, self.runs, user):  # Merge / Export as GGUF
            if not kinds or model.kind in kinds or "any" in kinds:
                label = Msg.of("models.merged_choice", name=model.name, engine=model.engine)
                choices.append((KeyedText(label), str(model.path)))
        return choices

    def read_upload(self, upload: object, user: str | None = None, rows_used: int | None = None) -> Table:
        """Read an uploaded table: it must be an upload of this app (Gradio's temp dir), of a table type, and
        within the size and row limits; raises ``InputError`` with one clear sentence otherwise. With login
        (``user`` not None) the user's upload and rows quotas apply too (``LimitError``); ``rows_used``: the rows
        the caller will process, when fewer than the table's."""
        max_bytes = self.config.max_upload_mb * 2**20
        path = checked_upload(upload, TABLE_SUFFIXES, max_bytes)
        if user is not None:
            self.quotas.check_upload(path.stat().st_size, user)
        table = read_table(path, max_bytes=max_bytes, max_rows=self.config.max_rows)
        if user is not None:
            rows = len(table.frame)
            self.quotas.check_rows(rows if rows_used is None else min(rows, max(int(rows_used), 0)), user)
        return table
