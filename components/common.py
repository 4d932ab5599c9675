"""Small UI helpers shared by the tabs (tabs never import each other)."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import gradio as gr

from components.i18n import request_lang, say, t, text
from pipelines.context import AppContext
from pipelines.errors import WorkbenchError
from pipelines.models.embedded import EMBEDDED
from pipelines.sessions import Sessions, session_key

log = logging.getLogger(__name__)
ERROR_VALUE = "error"  # the session value an ErrorLine shows
LAST_TOAST = "last-toast"  # (message, monotonic time) of the session's last error toast
GUARDED = "__lmw_guarded__"  # marks a handler wrapped by ui_errors, and a gr.Error it raised
REPEAT_SECONDS = 3.0  # the same error again within this time is not toasted again


def model_picker(
    ctx: AppContext, kinds: tuple[str, ...] = (), value: str | None = None, label_key: str = "common.model",
    elem_id: str | None = None,
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
        elem_id=elem_id,
    )
    def refresh(request: gr.Request) -> gr.Dropdown:
        return gr.Dropdown(choices=model_choices(ctx, kinds, request))

    dropdown.focus(refresh, None, dropdown, queue=False, show_progress="hidden", api_visibility="private")
    return dropdown


def model_choices(ctx: AppContext, kinds: tuple[str, ...] = (), request: Any = None) -> list[tuple[Any, str]]:
    """The context's (label, reference) model choices, translated: embedded models in the browser's language,
    fine-tuned runs ("<name> (adapter on <base>)") in the request's language. With login, only the runs of
    ``request``'s user (none without a request)."""
    from components.users import user_of

    user = user_of(ctx, request)
    pairs = ctx.model_choices(kinds) if user is None else ctx.model_choices(kinds, user)
    return [(embedded_label(ref) if ref in EMBEDDED else say(label), ref) for label, ref in pairs]


def embedded_label(name: str) -> gr.i18n.I18nData:
    """``name (embedded)`` in the browser's language."""
    return t(f"embedded.{name.replace('-', '_')}")


def progress_reporter(progress: gr.Progress | None) -> Callable[[float, str], None]:
    """Adapt a ``gr.Progress`` to the pipelines' ``(fraction, description)`` callback."""

    def report(fraction: float, desc: str) -> None:
        if progress is not None:
            progress(fraction, desc=say(desc) if desc else desc)  # keyed notes in the request's language

    return report


def error_text(exc: BaseException, lang: str) -> str:
    """One sentence for the user in ``lang``: a keyed pipeline error, a ``gr.Error``, or 'something went wrong'."""
    if isinstance(exc, WorkbenchError):
        return exc.render(lang)
    if isinstance(exc, gr.Error):
        return str(exc.message)
    return text("error.unexpected", lang, kind=type(exc).__name__, detail=str(exc)[:200])


def ui_errors(fn: Callable[..., Any] | None = None, *, sessions: Sessions | None = None) -> Any:
    """Turn errors into one clear ``gr.Error`` (a toast in the UI, a clean error for API clients).

    The message is in the request's language (the language switch's cookie, else Accept-Language). With
    ``sessions``, it is also kept for the session so an :class:`ErrorLine` can show it after the toast is gone.
    Usable as ``@ui_errors`` or ``ui_errors(fn, sessions=ctx.sessions)``.

    One toast per failure: wrapping an already wrapped handler adds nothing (the inner wrapper's ``gr.Error``
    passes through unchanged), and with ``sessions`` the same sentence failing again for the same session within
    :data:`REPEAT_SECONDS` (a ``.then`` chain, an example's follow-up event, a change event that re-runs the same
    check) fails silently -- the error line already shows it.
    """
    if fn is None:
        return functools.partial(ui_errors, sessions=sessions)
    marker = sessions if sessions is not None else True
    if getattr(fn, GUARDED, None) is not None and (sessions is None or getattr(fn, GUARDED) is sessions):
        return fn

    def convert(exc: Exception) -> gr.Error:
        if isinstance(exc, gr.Error) and getattr(exc, GUARDED, None) is not None:  # converted by an inner wrapper
            if sessions is not None and getattr(exc, GUARDED) is not sessions:
                sessions.set_value(session_key(current_request()), ERROR_VALUE, str(exc.message))
                setattr(exc, GUARDED, sessions)
            return exc
        lang = request_lang()  # the language of the request being handled (English outside one)
        if not isinstance(exc, WorkbenchError | gr.Error):
            log.exception("Unexpected error in %s", getattr(fn, "__name__", "handler"))
        message = error_text(exc, lang)
        visible = True
        if sessions is not None:
            session = session_key(current_request())
            last = sessions.get_value(session, LAST_TOAST)
            now = time.monotonic()
            visible = not (last and last[0] == message and now - last[1] < REPEAT_SECONDS)
            sessions.set_value(session, LAST_TOAST, (message, now))
            sessions.set_value(session, ERROR_VALUE, message)
        error = gr.Error(message, title=text("error.title", lang), print_exception=False, visible=visible)
        setattr(error, GUARDED, marker)
        return error

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - never show a traceback to the user
                raise convert(exc) from None

        setattr(gen_wrapper, GUARDED, marker)
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - never show a traceback to the user
            raise convert(exc) from None

    setattr(wrapper, GUARDED, marker)
    return wrapper


def current_request() -> gr.Request | None:
    """The request Gradio is handling in this thread, if any."""
    from gradio.context import LocalContext

    return LocalContext.request.get(None)


class ErrorLine:
    """A persistent, translated status line beside a group of actions.

    Wrap the actions' handlers with :meth:`guard` and pass their events to :meth:`watch`: when one fails, the
    line shows its sentence (the toast disappears, the line stays) and the outputs keep their previous values;
    the next success clears it.
    """

    def __init__(self, ctx: AppContext, elem_id: str) -> None:
        self.sessions = ctx.sessions
        self.box = gr.Markdown(elem_id=elem_id, elem_classes=["lmw-error-line"])

    def guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return ui_errors(fn, sessions=self.sessions)

    def watch(self, *events: Any) -> None:
        for event in events:
            event.failure(self._show, None, self.box, queue=False, show_progress="hidden", api_visibility="private")
            event.success(self._clear, None, self.box, queue=False, show_progress="hidden", api_visibility="private")

    def _show(self, request: gr.Request) -> Any:
        message = self.sessions.pop_value(session_key(request), ERROR_VALUE)
        return f"⚠️ {message}" if message else gr.skip()

    @staticmethod
    def _clear() -> str:
        return ""


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
