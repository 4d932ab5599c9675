"""The Fine-tune tab's pre-flight panel: token-length histogram, truncation, suggested max length, label balance
(with "balance by oversampling"), duplicates, near-empty rows, validation leaks, and the measured estimate.

Layout and event wiring only; the handlers are :class:`components.finetune_preflight_handlers.PreflightHandlers`.
It follows the form: any change of the data, columns, base model or the settings that matter re-runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from components.common import ErrorLine
from components.finetune_handlers import NUMBER_FIELDS
from components.finetune_preflight_handlers import PreflightHandlers, with_oversample
from components.i18n import request_lang, t
from pipelines.context import AppContext
from pipelines.sessions import session_key

PREFLIGHT = "preflight"  # own concurrency id: one probe at a time, never queued behind inference


@dataclass
class PreflightPanel:
    plot: gr.Plot
    summary: gr.Markdown
    checks: gr.Markdown
    oversample: gr.Checkbox
    use_suggested: gr.Button
    estimate: gr.Markdown
    again: gr.Button
    suggested: gr.State
    spec: gr.Textbox
    api_button: gr.Button
    api_spec: gr.Textbox
    api_json: gr.JSON
    errors: ErrorLine


def build_preflight_panel(ctx: AppContext) -> PreflightPanel:
    """The panel's layout (inside the current Blocks context), before the Start button."""
    with gr.Accordion(t("preflight.title"), open=True, elem_id="ft-preflight"):
        gr.Markdown(t("preflight.intro"))
        with gr.Row():
            with gr.Column(scale=3):
                plot = gr.Plot(label=t("preflight.histogram"), elem_id="ft-pf-plot")
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="ft-pf-summary")
                checks = gr.Markdown(elem_id="ft-pf-checks")
                with gr.Row():
                    oversample = gr.Checkbox(False, label=t("preflight.oversample"),
                                             info=t("preflight.oversample_info"), elem_id="ft-pf-oversample")
                    use = gr.Button(t("preflight.use_suggested"), size="sm", elem_id="ft-pf-use")
        estimate = gr.Markdown(elem_id="ft-pf-estimate")
        again = gr.Button(t("preflight.estimate_again"), size="sm", elem_id="ft-pf-again")
        errors = ErrorLine(ctx, "ft-pf-errors")
    hidden = [gr.Textbox(visible=False), gr.Button(visible=False), gr.Textbox(visible=False), gr.JSON(visible=False)]
    return PreflightPanel(plot, summary, checks, oversample, use, estimate, again, gr.State(None), *hidden, errors)


def wire_preflight(ctx: AppContext, panel: PreflightPanel, *, upload: gr.File, table: gr.State,
                   triggers: Sequence[Any], collect: Callable[..., str], collect_inputs: list[Any],
                   max_length: gr.Number) -> None:
    """Re-run the check on every trigger: collect the spec like Start does, analyse, then estimate."""
    handlers = PreflightHandlers(ctx)

    def analyse(table_value: Any, spec_json: str, oversample: bool, request: gr.Request) -> tuple:
        shown = handlers.check(table_value, spec_json, oversample, request_lang(request))
        if shown is None:
            return None, "", "", None
        return shown.figure, shown.summary, shown.checks, shown.suggested

    def estimate(table_value: Any, spec_json: str, oversample: bool, request: gr.Request) -> str:
        return handlers.estimate(table_value, spec_json, oversample, session_key(request), request_lang(request))

    def use_suggested(suggested: int | None) -> Any:
        return suggested if suggested else gr.skip()

    def preflight(path: str | None, spec_json: str, request: gr.Request) -> dict:
        """Pre-flight check of a planned run, before Start: ``spec_json`` as for ``finetune``. Returns JSON:
        token-length histogram and statistics (the base model's tokenizer), truncated rows and share, suggested
        max length, label balance, duplicates, near-empty rows, validation rows also in the train split,
        warnings, and the estimate (steps, time and peak memory from a measured 3-step probe, advice)."""
        return handlers.report(path, spec_json, estimate=True, lang=request_lang(request))

    guard = panel.errors.guard
    spec_inputs = [panel.spec, panel.oversample]
    collected = gr.on([*triggers, panel.oversample.change, panel.again.click], guard(collect), collect_inputs,
                      panel.spec, api_visibility="private", trigger_mode="always_last", show_progress="hidden")
    analysed = collected.success(guard(analyse), [table, *spec_inputs],
                                 [panel.plot, panel.summary, panel.checks, panel.suggested],
                                 api_visibility="private", show_progress="minimal")
    estimated = analysed.success(guard(estimate), [table, *spec_inputs], panel.estimate, api_visibility="private",
                                 concurrency_id=PREFLIGHT, concurrency_limit=1, trigger_mode="always_last")
    panel.use_suggested.click(use_suggested, panel.suggested, max_length, api_visibility="private")
    api = panel.api_button.click(guard(preflight), [upload, panel.api_spec], panel.api_json, api_name="preflight",
                                 concurrency_id=PREFLIGHT, concurrency_limit=1)
    panel.errors.watch(collected, analysed, estimated, api)


def add_oversample(spec_json: str, oversample: bool) -> str:
    """Start's spec with the panel's "balance by oversampling" choice."""
    return with_oversample(spec_json, oversample)


def attach(ctx: AppContext, settings: Any, data: Any, collect_event: Any, spec_box: gr.Textbox,
           collect: Callable[..., str], inputs: list[Any]) -> Any:
    """Wire the pre-flight panel and the presets row (``settings.preflight``/``settings.presets``, built by the
    tab) to the form; returns Start's collect event extended with the oversampling choice."""
    from components.finetune_presets import wire_presets

    panel: PreflightPanel | None = getattr(settings, "preflight", None)
    oversample = panel.oversample if panel is not None else None
    if panel is not None:
        numbers = settings.numbers
        triggers = [data.report.change, data.base.change, numbers["max_length"].change, numbers["batch_size"].change,
                    numbers["grad_accum"].change, settings.checkpointing.change]
        wire_preflight(ctx, panel, upload=data.upload, table=data.table, triggers=triggers, collect=collect,
                       collect_inputs=inputs, max_length=numbers["max_length"])
        collect_event = collect_event.success(add_oversample, [spec_box, oversample], spec_box,
                                              api_visibility="private")
    if getattr(settings, "presets", None) is not None:
        wire_presets(ctx, settings.presets, collect=collect, collect_inputs=inputs,
                     numbers=[settings.numbers[n] for n in NUMBER_FIELDS], targets=settings.targets,
                     checkpointing=settings.checkpointing, oversample=oversample)
    return collect_event


def presets_row(ctx: AppContext) -> Any:
    """The saved-presets accordion (components/finetune_presets.py)."""
    from components.finetune_presets import presets_row as build

    return build(ctx)


def build_compare_panel(ctx: AppContext) -> dict[str, Any]:
    """The "Compare runs" accordion (components/finetune_compare.py)."""
    from components.finetune_compare import build_compare_panel as build

    return build(ctx)
