"""Exceptions shown to the user: each carries a locale key and parameters (texts in ``assets/locales``).

    raise InputError("table.ragged_row", row=12)

``str(exc)`` is the English sentence (for logs and tests); the UI renders :meth:`WorkbenchError.render` in the
request's language. ``tests/test_house.py`` fails when a key raised anywhere has no English or Chinese text.
"""

from __future__ import annotations

from typing import Any

from pipelines.messages import Msg


class WorkbenchError(Exception):
    """Base class: one clear sentence for the user, from a locale key and its parameters."""

    def __init__(self, key: str | Msg, /, **params: Any) -> None:
        self.msg = key if isinstance(key, Msg) else Msg(key, params)
        super().__init__(self.msg.render("en"))

    @property
    def key(self) -> str:
        return self.msg.key

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.msg.params)

    def render(self, lang: str = "en") -> str:
        return self.msg.render(lang)


class ModelLoadError(WorkbenchError):
    """A model reference could not be resolved or loaded."""


class InputError(WorkbenchError):
    """User input (text, file, setting) is invalid."""


class BusyError(WorkbenchError):
    """A single-slot resource (e.g. the trainer) is already in use."""


class LimitError(InputError):
    """An input is over one of the app's caps (characters, rows, tokens, bytes)."""
