"""Small UI helpers shared by the tabs (tabs never import each other)."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from components.i18n import localize, request_lang, t
from pipelines.context import AppContext
from pipelines.errors import WorkbenchError
from pipelines.models.embedded import EMBEDDED

log = logging.getLogger(__name__)


def model_picker(
    ctx: AppContext, kinds: tuple[str, ...] = (), value: str | None = None, label_key: str = "common.model"
) -> gr.Dropdown:
    """A model dropdown listing embedded models and finished adapters; any hub id or folder can be typed.

    The choices refresh whenever the dropdown gets focus, so a newly trained adapter shows up with no restart.
    """
    choices = model_choices(ctx, kinds)
    dropdown = gr.Dropdown(
        choices=choices,
        value=value or (choices[0][1] if choices else None),
        label=t(label_key),
        info=t("common.model_info"),
        allow_custom_value=True,
        filterable=True,
    )
    dropdown.focus(
        lambda: gr.Dropdown(choices=model_choices(ctx, kinds)), None, dropdown,
        queue=False, show_progress="hidden", api_visibility="private",
    )
    return dropdown


def model_choices(ctx: AppContext, kinds: tuple[str, ...] = ()) -> list[tuple[Any, str]]:
    """The context's (label, reference) model choices, with the embedded models' labels translated."""
    return [(embedded_label(ref) if ref in EMBEDDED else label, ref) for label, ref in ctx.model_choices(kinds)]


def embedded_label(name: str) -> gr.i18n.I18nData:
    """``name (embedded)`` in the browser's language."""
    return t(f"embedded.{name.replace('-', '_')}")


def progress_reporter(progress: gr.Progress | None) -> Callable[[float, str], None]:
    """Adapt a ``gr.Progress`` to the pipelines' ``(fraction, description)`` callback."""

    def report(fraction: float, desc: str) -> None:
        if progress is not None:
            progress(fraction, desc=desc)

    return report


def ui_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn pipeline errors into a clear ``gr.Error`` message (also a clean error for API clients).

    The message is translated into the request's language (the language switch's cookie, else Accept-Language)
    with ``assets/locales/errors.json``.
    """

    def convert(exc: Exception) -> gr.Error:
        lang = request_lang()  # the language of the request being handled (English outside one)
        title = localize("Error", lang)
        if isinstance(exc, gr.Error):
            exc.message, exc.title = localize(str(exc.message), lang), localize(exc.title, lang)
            return exc
        if isinstance(exc, WorkbenchError):
            return gr.Error(localize(str(exc), lang), title=title)
        log.exception("Unexpected error in %s", fn.__name__)
        return gr.Error(localize(f"Something went wrong: {type(exc).__name__}: {str(exc)[:200]}", lang), title=title)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - never show a traceback to the user
                raise convert(exc) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - never show a traceback to the user
            raise convert(exc) from None

    return wrapper


def examples(rows: list[list[Any]], inputs: list[gr.components.Component],
             example_labels: list[str] | None = None) -> gr.Examples:
    """Clickable examples that fill ``inputs`` (place them in the layout; then wire them with :func:`run_example`)."""
    ex = gr.Examples(rows, inputs, label=t("common.examples"), example_labels=example_labels,
                     cache_examples=False, api_visibility="private", examples_per_page=6)
    ex.dataset.headers = []  # the Dataset would show the inputs' labels untranslated (raw i18n keys)
    for props in ex.dataset.component_props:  # and a dropdown's translated choice names as raw markers:
        if props.get("choices"):  # show the language-neutral value instead (e.g. "embeddings")
            props["choices"] = [(value if isinstance(name, gr.i18n.I18nData) else name, value)
                                for name, value in props["choices"]]
    return ex


def run_example(ex: gr.Examples, fn: Callable[..., Any], inputs: Any, outputs: Any, **event: Any) -> Any:
    """Run ``fn`` right after an example is clicked (one click to a result), like ``run_on_click=True``, but
    ``fn`` may read more inputs than the example fills and takes event options such as ``concurrency_id``."""
    return ex.load_input_event.then(fn, inputs, outputs, api_visibility="private", **event)
