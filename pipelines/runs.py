"""Where the rest of the app finds the run store (it lives in :mod:`pipelines.training.store`)."""

from __future__ import annotations

from pipelines.training.enums import USABLE, RunStatus
from pipelines.training.store import INTERRUPTED, RunInfo, RunStore, recover_interrupted

__all__ = ["INTERRUPTED", "USABLE", "RunInfo", "RunStatus", "RunStore", "recover_interrupted"]
