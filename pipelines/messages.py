"""Messages with a key and parameters; their texts live in ``assets/locales/*.json`` in English and Chinese.

Every locale file holds ``{"en": {key: template}, "zh-CN": {key: template}}``. Pipelines raise errors and return
notes as :class:`Msg` (a key plus parameters), never as finished sentences; the UI renders them in the request's
language. This module reads JSON only (no Gradio), so pipelines and components share one table.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

LOCALES_DIR = Path(__file__).resolve().parent.parent / "assets" / "locales"
LANGUAGES = ("en", "zh-CN")


def load_texts(folder: Path = LOCALES_DIR) -> Mapping[str, Mapping[str, str]]:
    """Merge every locale file into one read-only ``{language: {key: template}}`` mapping."""
    merged: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    for file in sorted(folder.glob("*.json")):
        data = json.loads(file.read_text(encoding="utf-8"))
        for lang in LANGUAGES:
            merged[lang].update(data.get(lang, {}))
    return MappingProxyType({lang: MappingProxyType(table) for lang, table in merged.items()})


@functools.cache
def texts() -> Mapping[str, Mapping[str, str]]:
    """The locale table, read once."""
    return load_texts()


def has_key(key: str, lang: str = "en") -> bool:
    return key in texts().get(lang, {})


def template_fields(template: str) -> set[str]:
    """The ``{name}`` placeholders of a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(key: str, lang: str = "en", params: Mapping[str, Any] | None = None) -> str:
    """The text of ``key`` in ``lang`` (English when missing there), filled with ``params``.

    A parameter that is itself a :class:`Msg` is rendered in the same language. An unknown key renders as the key
    itself, so a missing translation shows up plainly instead of crashing (tests check every key exists).
    """
    table = texts()
    template = table.get(lang, {}).get(key) or table["en"].get(key)
    if template is None:
        return key
    values = {name: (value.render(lang) if isinstance(value, Msg) else value) for name, value in (params or {}).items()}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


@dataclass(frozen=True)
class Msg:
    """A translatable message: a locale key and its parameters."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, key: str, **params: Any) -> Msg:
        return cls(key, params)

    def render(self, lang: str = "en") -> str:
        return render(self.key, lang, self.params)

    def __str__(self) -> str:
        return self.render("en")
