"""The Fine-tune tab's "Before and after" panel: for the selected run, the base model and the adapter on the same
validation rows with the Evaluate tab's metrics and 95% intervals, the paired p-value of each change, and for a
classifier the frozen-embedding logistic-regression baseline ("LoRA earned its time", or plainly that it did not).

Layout and wiring only; :class:`FinetuneResultsHandlers` turns a run id into plain values. The files it reads are
written by :mod:`pipelines.training.before_after` and :mod:`pipelines.training.baseline` in the run folder.

Use in the tab: ``panel = build_results_panel(ctx, runs.pick, run_id_box)``: every given component whose value is
a run id (or ``run:<id>``) re-renders the panel when it changes. Built before those components exist, wire later
with ``wire_results_panel(ctx, panel, *sources)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from components.i18n import request_lang, say, t, text
from pipelines.context import AppContext
from pipelines.messages import Msg, has_key

if TYPE_CHECKING:
    import pandas as pd

PanelView = tuple[str, str, Any]  # verdict (Markdown), rows note (Markdown), metrics table


def _interval(value: dict[str, Any] | None) -> str:
    """``value [low, high]`` as the Evaluate tab shows it; a dash when missing."""
    if not isinstance(value, dict) or value.get("value") is None:
        return "—"
    shown = f"{value['value']:.4g}"
    if value.get("low") is not None and value.get("high") is not None:
        shown += f" [{value['low']:.4g}, {value['high']:.4g}]"
    return shown


def _change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    try:
        delta = float(after["value"]) - float(before["value"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return "—"
    return f"{delta:+.4g}" if math.isfinite(delta) else "—"


def metric_label(name: str, lang: str) -> str:
    """A metric's name in ``lang`` (the Evaluate tab's texts)."""
    key = f"evaluate.metric_{name}"
    return text(key, lang) if has_key(key) else name


class FinetuneResultsHandlers:
    """Plain values for the panel: a run id and a language in, Markdown and a table out."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def run_dir(self, run: str | None, user: str | None = None) -> Path | None:
        """The folder of ``run`` (an id or ``run:<id>``): a finished run, or the one being written; None if none
        (or, with login, when it is not ``user``'s)."""
        from pipelines.errors import WorkbenchError
        from pipelines.training.store import tmp_folder

        run_id = str(run or "").strip().removeprefix("run:")
        if not run_id or run_id == "None":
            return None
        try:
            if not self.ctx.runs.visible(run_id, user):  # another user's run, finished or training
                return None
            return self.ctx.runs.find(run_id, user).path
        except WorkbenchError:
            live = tmp_folder(self.ctx.runs.root, run_id)
            return live if not run_id.startswith(".") and live.is_dir() else None

    def table(self, record: dict[str, Any] | None, lang: str) -> pd.DataFrame:
        """One row per metric: base and adapter as ``value [low, high]``, the change, the paired p-value."""
        import pandas as pd

        if not record:
            return pd.DataFrame()
        before = record.get("before", {}).get("metrics", {}) or {}
        after = (record.get("after") or {}).get("metrics", {}) or {}
        p_values = record.get("p_values") or {}
        columns = [text(f"finetune_results.column_{c}", lang) for c in ("metric", "base", "adapter", "change", "p")]
        rows = []
        for name in dict.fromkeys([*before, *after]):
            p = p_values.get(name)
            rows.append([metric_label(name, lang), _interval(before.get(name)), _interval(after.get(name)),
                         _change(before.get(name), after.get(name)), "—" if p is None else f"{p:.3g}"])
        return pd.DataFrame(rows, columns=columns)

    def note(self, record: dict[str, Any] | None, lang: str) -> str:
        """Rows scored, how each side was scored and how long it took; or why there is nothing to show."""
        from pipelines.evaluation.predictors import kind_name

        if not record:
            return text("finetune_results.none", lang)
        before, after = record.get("before") or {}, record.get("after")
        params = {"rows": record.get("rows", 0), "base": before.get("model", ""),
                  "method": say(kind_name(str(before.get("method", ""))), lang),
                  "before": f"{float(before.get('seconds', 0.0)):.1f}"}
        if not after:
            return text("finetune_results.rows_pending", lang, **params) + " " + text("finetune_results.pending", lang)
        return text("finetune_results.rows", lang, after_model=after.get("model", ""),
                    after=f"{float(after.get('seconds', 0.0)):.1f}", **params)

    def verdict(self, folder: Path, record: dict[str, Any] | None, lang: str) -> str:
        """The baseline line of a classifier run: did LoRA beat the frozen-embedding regression?"""
        from pipelines.training.baseline import read_baseline, verdict
        from pipelines.training.store import read_info

        baseline = read_baseline(folder)
        if baseline is None:
            return ""
        info = read_info(folder)
        metrics = dict(info.metrics) if info is not None else {}
        if metrics.get("accuracy") is None and record and record.get("after"):
            after = record["after"].get("metrics", {})
            metrics = {k: after[k]["value"] for k in ("accuracy", "macro_f1") if k in after}
        message = verdict(baseline, metrics)
        if message is None:
            message = Msg.of("finetune_results.baseline_only", baseline=f"{float(baseline['accuracy']):.3f}",
                             baseline_f1=f"{float(baseline['macro_f1']):.3f}",
                             seconds=f"{float(baseline.get('seconds', 0.0)):.1f}")
        from pipelines.training.augment import augmentation_line  # a run with added rows: with vs without them

        added = augmentation_line(baseline, metrics)
        return say(message, lang) + (f"\n\n{say(added, lang)}" if added is not None else "")

    def show(self, run: str | None, lang: str = "en", user: str | None = None) -> PanelView:
        """(verdict, note, table) for ``run`` (with login: ``user``'s only); a hint when no run is picked."""
        from pipelines.training.before_after import read_before_after

        folder = self.run_dir(run, user)
        if folder is None:
            return "", text("finetune_results.pick", lang), self.table(None, lang)
        record = read_before_after(folder)
        return self.verdict(folder, record, lang), self.note(record, lang), self.table(record, lang)


def wire_results_panel(ctx: AppContext, panel: dict[str, Any], *sources: gr.components.Component) -> None:
    """Re-render ``panel`` whenever one of ``sources`` (components holding a run id) changes."""
    handlers = FinetuneResultsHandlers(ctx)

    def refresh(run: str | None, request: gr.Request) -> tuple:
        from components.users import user_of

        verdict, note, table = handlers.show(run, request_lang(request), user_of(ctx, request))
        return verdict, note, gr.Dataframe(value=table, visible=not table.empty)

    outputs = [panel["verdict"], panel["note"], panel["table"]]
    for source in sources:
        source.change(refresh, source, outputs, api_visibility="private", show_progress="hidden")


def build_results_panel(ctx: AppContext, *sources: gr.components.Component) -> dict[str, gr.components.Component]:
    """The panel (inside the current Blocks context), wired to ``sources`` if given (see the module doc)."""
    with gr.Accordion(t("finetune_results.title"), open=True, elem_id="ft-before-after"):
        gr.Markdown(t("finetune_results.intro"))
        verdict = gr.Markdown(elem_id="ft-baseline-verdict")
        note = gr.Markdown(elem_id="ft-before-after-note")
        table = gr.Dataframe(interactive=False, wrap=True, visible=False, elem_id="ft-before-after-table")
    panel = {"verdict": verdict, "note": note, "table": table}
    if sources:
        wire_results_panel(ctx, panel, *sources)
    return panel
