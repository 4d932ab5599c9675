"""Handlers of the Fine-tune tab's live probes and domain-adaptation option: plain values in, plain values out.

The probes (one per line, up to five) and "also train the embeddings" go into the ``finetune`` request's JSON spec
(``"probes": [...]``, ``settings.train_embeddings``) between the form's collect step and the start; the table of
answers comes from the session's running job (live) or from a finished run's ``run.json``.
"""

from __future__ import annotations

import json
from typing import Any

from pipelines.context import AppContext
from pipelines.errors import InputError, WorkbenchError
from pipelines.training.job import KIND
from pipelines.training.probes import probe_headers, probe_rows
from pipelines.training.settings import MAX_PROBES, probe_list

ProbeTable = tuple[list[list[Any]], list[str]]  # rows, headers


class ProbeHandlers:
    """What the probes panel does, on plain values."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    @staticmethod
    def merge(spec_json: str, probes_text: str | None, train_embeddings: bool = False) -> str:
        """The collected spec with the probes (one per line) and, for domain adaptation, the embeddings option."""
        spec = json.loads(spec_json or "{}")
        probes = probe_list(probes_text or "")
        if len(probes) > MAX_PROBES:
            raise InputError("training.setting.probes")
        if probes:
            spec["probes"] = probes
        if train_embeddings and str(spec.get("task", "")).startswith("domain"):
            spec["settings"] = {**(spec.get("settings") or {}), "train_embeddings": True}
        return json.dumps(spec)

    def live(self, session: str, lang: str = "en") -> ProbeTable:
        """The probe table of the session's training job (running or just ended); empty when there is none."""
        job = self.ctx.sessions.get(session, KIND)
        history = job.snapshot().probes if job is not None else []
        return probe_rows(history), probe_headers(lang)

    def of_run(self, run: str | None, lang: str = "en", user: str | None = None) -> ProbeTable:
        """The probe table of a run (an id or ``run:<id>``; with login, ``user``'s only): the answers kept in its
        ``run.json``."""
        run_id = str(run or "").strip().removeprefix("run:")
        history: list[dict] = []
        if run_id and run_id != "None":
            try:
                history = list(self.ctx.runs.find(run_id, user).metrics.get("probes") or [])
            except WorkbenchError:
                history = []
        return probe_rows(history), probe_headers(lang)
