"""A model picker for generation: the app's causal LMs and runs, plus the models of remote endpoints
(``remote:<endpoint>/<model>``, as their last check listed them). Like ``components.common.model_picker``, any
reference can be typed, and the choices refresh when the dropdown gets focus."""

from __future__ import annotations

from typing import Any

import gradio as gr

from components.common import model_choices
from components.i18n import t
from pipelines.engines.remote import backends_of


def generation_choices(ctx: Any, kinds: tuple[str, ...], request: Any = None) -> list[tuple[Any, str]]:
    """The app's models (with login: the request user's runs only) and the remote endpoints' models."""
    return [*model_choices(ctx, kinds, request), *backends_of(ctx).choices()]


def generation_picker(ctx: Any, kinds: tuple[str, ...], value: str, label_key: str = "common.model",
                      elem_id: str | None = None) -> gr.Dropdown:
    dropdown = gr.Dropdown(choices=generation_choices(ctx, kinds), value=value, label=t(label_key),
                           info=t("engines.picker_info"), allow_custom_value=True, filterable=True, elem_id=elem_id)
    def refresh(request: gr.Request) -> gr.Dropdown:
        return gr.Dropdown(choices=generation_choices(ctx, kinds, request))

    dropdown.focus(refresh, None, dropdown, queue=False, show_progress="hidden", api_visibility="private")
    return dropdown
