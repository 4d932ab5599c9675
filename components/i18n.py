"""UI strings: every ``assets/locales/*.json`` holds ``{"en": {...}, "zh-CN": {...}}`` for one tab."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

LOCALES_DIR = Path(__file__).resolve().parent.parent / "assets" / "locales"
LANGUAGES = ("en", "zh-CN")


def load_translations(folder: Path = LOCALES_DIR) -> dict[str, dict[str, str]]:
    """Merge every locale file into one ``{language: {key: text}}`` mapping."""
    merged: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    for file in sorted(folder.glob("*.json")):
        data = json.loads(file.read_text(encoding="utf-8"))
        for lang, strings in data.items():
            merged.setdefault(lang, {}).update(strings)
    return merged


TRANSLATIONS = load_translations()
I18N = gr.I18n(**TRANSLATIONS)


def t(key: str) -> gr.i18n.I18nData:
    """A translatable UI string (looked up in the browser's language)."""
    return I18N(key)


def text(key: str, lang: str = "en", **fmt: object) -> str:
    """A translated string resolved on the server (for messages built in handlers)."""
    table = TRANSLATIONS.get(lang) or TRANSLATIONS["en"]
    template = table.get(key) or TRANSLATIONS["en"].get(key, key)
    return template.format(**fmt) if fmt else template
