"""Save and load the Fine-tune settings as a named preset file (inside the settings accordion). Layout and
wiring only; the handlers are :class:`components.finetune_presets_handlers.PresetHandlers`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from components.common import ErrorLine
from components.finetune_preflight_handlers import with_oversample
from components.finetune_presets_handlers import PresetHandlers
from components.i18n import request_lang, t
from pipelines.context import AppContext


@dataclass
class PresetsRow:
    saved: gr.Dropdown
    name: gr.Textbox
    save: gr.Button
    load: gr.Button
    status: gr.Markdown
    errors: ErrorLine


def presets_row(ctx: AppContext) -> PresetsRow:
    """The saved-presets accordion (inside the current Blocks context), after the settings."""
    names = PresetHandlers(ctx).names()
    with gr.Accordion(t("presets.title"), open=False, elem_id="ft-presets"):
        with gr.Row():
            saved = gr.Dropdown(names, value=None, label=t("presets.saved_list"), allow_custom_value=False, scale=2,
                                elem_id="ft-preset-pick")
            load = gr.Button(t("presets.load"), scale=1, elem_id="ft-preset-load")
            name = gr.Textbox(label=t("presets.name"), max_length=60, scale=2, elem_id="ft-preset-name")
            save = gr.Button(t("presets.save"), scale=1, elem_id="ft-preset-save")
        status = gr.Markdown(elem_id="ft-preset-status")
        errors = ErrorLine(ctx, "ft-preset-errors")
    return PresetsRow(saved, name, save, load, status, errors)


def wire_presets(ctx: AppContext, row: PresetsRow, *, collect: Callable[..., str], collect_inputs: list[Any],
                 numbers: list[Any], targets: gr.Textbox, checkpointing: gr.Checkbox,
                 oversample: gr.Checkbox | None) -> None:
    """Save: the form collected like Start does, under the typed name. Load: fill the settings widgets."""
    handlers = PresetHandlers(ctx)
    extra = [oversample] if oversample is not None else []

    def save(name: str, *values: Any) -> tuple:
        spec = collect(*values[:len(collect_inputs)])
        if extra:
            spec = with_oversample(spec, bool(values[len(collect_inputs)]))
        status, names, saved = handlers.save(name, spec, request_lang())
        return status, gr.Dropdown(choices=names, value=saved)

    def load(name: str | None) -> tuple:
        got = handlers.load(name, request_lang())
        tail = [got["oversample"]] if extra else []
        return (*got["numbers"], got["targets"], got["checkpointing"], *tail, got["status"])

    def refresh() -> gr.Dropdown:
        return gr.Dropdown(choices=handlers.names())

    saved = row.save.click(row.errors.guard(save), [row.name, *collect_inputs, *extra], [row.status, row.saved],
                           api_visibility="private")
    loaded = row.load.click(row.errors.guard(load), row.saved, [*numbers, targets, checkpointing, *extra, row.status],
                            api_visibility="private")
    row.saved.focus(refresh, None, row.saved, queue=False, show_progress="hidden", api_visibility="private")
    row.errors.watch(saved, loaded)
