"""The pre-flight panel's handlers: plain values in, plain values out (a plotly figure, Markdown, JSON).

The analysis (token lengths, balance, duplicates, leaks) is quick and follows every change of the form; the
estimate runs a measured probe of the training step and is kept per session for the same file and spec.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from components.i18n import text
from pipelines.context import AppContext
from pipelines.errors import WorkbenchError
from pipelines.messages import Msg
from pipelines.training.preflight import PreflightReport
from pipelines.training.preflight_run import PreflightRun
from pipelines.training.spec import JobSpec

ESTIMATE_VALUE = "preflight-estimate"  # the session value: (key of file and spec, estimate dict)


@dataclass
class PreflightView:
    """What the panel shows, in one language."""

    figure: Any
    summary: str
    checks: str
    suggested: int | None


def with_oversample(spec_json: str, oversample: bool) -> str:
    """The ``finetune`` spec JSON with ``settings.oversample`` set from the panel's checkbox."""
    data = json.loads(spec_json or "{}")
    data.setdefault("settings", {})["oversample"] = bool(oversample)
    return json.dumps(data)


def _seconds(value: float, lang: str) -> str:
    minutes, seconds = divmod(int(round(value)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return text("preflight.time_h", lang, h=hours, m=minutes)
    if minutes:
        return text("preflight.time_m", lang, m=minutes, s=seconds)
    return text("preflight.time_s", lang, s=seconds)


def training_busy(ctx: AppContext) -> bool:
    """Whether a training run holds a device now (the probe would measure a busy machine)."""
    slots = getattr(ctx, "training_slots", None)
    if slots is not None:
        return bool(slots.held())
    lock = getattr(ctx, "training_lock", None)
    return bool(lock is not None and lock.locked())


def _key(table: Any, spec: JobSpec) -> str:
    """Identifies a table's content and a spec (an estimate is reused for the same pair)."""
    import pandas as pd

    digest = hashlib.sha256(pd.util.hash_pandas_object(table.frame, index=True).values.tobytes())
    digest.update(replace(spec, name="").to_json().encode())  # the run's name changes nothing
    return digest.hexdigest()


def _note_lines(notes: list[Any], lang: str) -> list[str]:
    out = []
    for note in notes:
        out.append("- ⚠️ " + (note.render(lang) if isinstance(note, Msg) else
                             Msg(note["key"], note.get("params", {})).render(lang)))
    return out


class PreflightHandlers:
    """What the pre-flight panel does, on plain values."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.runner = PreflightRun(ctx.config, lambda: training_busy(ctx))

    def _spec(self, spec_json: str, oversample: bool | None) -> JobSpec:
        spec = JobSpec.from_json(spec_json)
        if oversample is not None:
            spec.settings = replace(spec.settings, oversample=bool(oversample))
        return spec

    def report(self, path: str | None, spec_json: str, estimate: bool = True, lang: str = "en") -> dict[str, Any]:
        """The full report as JSON (the ``/preflight`` endpoint)."""
        from components.finetune_handlers import FinetuneHandlers

        table = FinetuneHandlers(self.ctx).read(path)
        found = self.runner.check(table, JobSpec.from_json(spec_json), estimate=estimate)
        data = found.to_dict(lang)
        for note in (data.get("estimate") or {}).get("notes", []):  # in the request's language
            note["text"] = Msg(note["key"], note.get("params", {})).render(lang)
        data["token_lengths"] = found.lengths
        return data

    def check(self, table: Any, spec_json: str, oversample: bool | None = None, lang: str = "en",
              ) -> PreflightView | None:
        """The analysis of the current form (None without a table); a problem with the data is shown as text."""
        if table is None:
            return None
        try:
            found = self.runner.check(table, self._spec(spec_json, oversample))
        except WorkbenchError as exc:
            return PreflightView(None, f"⚠️ {exc.render(lang)}", "", None)
        from pipelines.training.preflight_charts import length_figure

        return PreflightView(length_figure(found, lang), self.summary(found, lang), self.checks(found, lang),
                             found.suggested_max_length)

    def estimate(self, table: Any, spec_json: str, oversample: bool | None, session: str, lang: str = "en") -> str:
        """The measured estimate as Markdown (kept per session for the same table and spec)."""
        if table is None:
            return ""
        spec = self._spec(spec_json, oversample)
        key = _key(table, spec)
        kept = self.ctx.sessions.get_value(session, ESTIMATE_VALUE)
        if kept is not None and kept[0] == key:
            return self.estimate_markdown(kept[1], lang)
        try:
            found = self.runner.check(table, spec, estimate=True)
        except WorkbenchError as exc:
            return f"⚠️ {exc.render(lang)}"
        if not (found.estimate or {}).get("skipped"):
            self.ctx.sessions.set_value(session, ESTIMATE_VALUE, (key, found.estimate))
        return self.estimate_markdown(found.estimate or {}, lang)

    # ---- rendering ---------------------------------------------------------------------------------------------
    @staticmethod
    def summary(r: PreflightReport, lang: str) -> str:
        s = r.length_stats
        lines = [text("preflight.lengths", lang, rows=r.rows, model=r.base_model, median=int(s["median"]),
                      p95=int(s["p95"]), longest=int(s["max"])),
                 text("preflight.truncation", lang, max_length=r.max_length, rows=r.truncated,
                      share=f"{100 * r.truncated_share:.1f}%", suggested=r.suggested_max_length)]
        if r.label_counts:
            counts = ", ".join(f"`{k}` {v}" for k, v in r.label_counts.items())
            lines.append(text("preflight.labels", lang, counts=counts, ratio=f"{r.balance_ratio:.2f}"))
            if r.oversample and r.balanced_counts:
                lines.append(text("preflight.balanced", lang, rows=next(iter(r.balanced_counts.values()))))
        return "\n\n".join(lines)

    @staticmethod
    def checks(r: PreflightReport, lang: str) -> str:
        lines = [text("preflight.checks", lang, duplicates=r.duplicates, near_empty=r.near_empty,
                      leaks=r.in_validation, val=r.val_rows)]
        lines += _note_lines(r.warnings, lang)
        if not r.warnings:
            lines.append("\n" + text("preflight.all_good", lang))
        return "\n".join(lines)

    @staticmethod
    def estimate_markdown(e: dict[str, Any], lang: str) -> str:
        if not e:
            return ""
        if e.get("skipped"):
            return "\n".join(_note_lines(e.get("notes", []), lang))
        probe = e.get("probe") or {}
        lines = [text("preflight.estimate", lang, device=str(e["device"]).upper(), steps=e["steps"],
                      evaluations=e["evaluations"], total=_seconds(e["total_s"], lang),
                      train=_seconds(e["train_s"], lang), step_s=f"{e['step_s']:.3f}",
                      startup=_seconds(e["startup_s"], lang), threads=probe.get("threads", "?")),
                 text("preflight.memory_" + ("cuda" if e["memory_kind"] == "cuda" else "ram"), lang,
                      peak=f"{e['peak_mb']:,.0f}", memory=f"{e['memory_mb']:,.0f}")]
        if e.get("fits"):
            lines.append(text("preflight.fits", lang))
        else:
            lines += _note_lines(e.get("notes", []), lang)
        return "\n\n".join(lines)
