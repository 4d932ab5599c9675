"""UI strings: every ``assets/locales/*.json`` holds ``{"en": {...}, "zh-CN": {...}}`` for one tab.

Labels go through :func:`t` (translated in the browser). Messages built on the server (errors, status lines) go
through :func:`text` (a key) or :func:`say` (a pipeline's :class:`~pipelines.messages.Msg` or keyed note).
:func:`localize` and :class:`Catalogue` (English sentences matched against the old ``errors.json`` catalogue) are
being retired: they stay only while some tabs still pass English sentences.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import gradio as gr

from pipelines.messages import LANGUAGES, LEGACY_CATALOGUE, LOCALES_DIR, Msg, load_texts, render, texts

ERRORS_FILE = LEGACY_CATALOGUE
LANG_COOKIE = "lmw_lang"  # set by the language switch (components/language.py)


def load_translations(folder: Path = LOCALES_DIR) -> dict[str, dict[str, str]]:
    """Every locale file merged into one ``{language: {key: text}}`` mapping (see :mod:`pipelines.messages`)."""
    return {lang: dict(table) for lang, table in load_texts(folder).items()}


TRANSLATIONS = texts()
I18N = gr.I18n(**{lang: dict(table) for lang, table in TRANSLATIONS.items()})


def t(key: str) -> gr.i18n.I18nData:
    """A translatable UI string (looked up in the browser's language)."""
    return I18N(key)


def text(key: str, lang: str = "en", **fmt: object) -> str:
    """A translated string resolved on the server (for messages built in handlers)."""
    return render(key, lang, fmt)


def say(message: Msg | str | None, lang: str | None = None) -> str:
    """A pipeline's message in ``lang`` (default: the request's): a :class:`Msg`, a keyed note
    (:class:`pipelines.keyed_text.KeyedText`), or a legacy English sentence."""
    if message is None:
        return ""
    lang = lang or request_lang()
    keyed = message if isinstance(message, Msg) else getattr(message, "msg", None)
    if isinstance(keyed, Msg):
        return keyed.render(lang)
    return localize(str(message), lang)


# ---- the request's language --------------------------------------------------------------------------------
def language_of(header: str | None) -> str:
    """``zh-CN`` when the Accept-Language header's first language is Chinese, else ``en``."""
    first = (header or "").split(",")[0].strip().lower()
    return "zh-CN" if first.startswith("zh") else "en"


def cookie_lang(cookie_header: str | None) -> str | None:
    """The language chosen with the page's language switch (the ``lmw_lang`` cookie): ``en``, ``zh-CN`` or None."""
    for part in (cookie_header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == LANG_COOKIE:
            value = value.strip().strip('"')
            return value if value in LANGUAGES else None
    return None


def request_lang(request: gr.Request | None = None) -> str:
    """The language of ``request`` or, when None, of the request Gradio is handling now (``en`` outside one).

    The language switch's cookie wins; without it (or with "Auto") the Accept-Language header decides.
    """
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    headers = getattr(request, "headers", None)
    if headers is None:
        return "en"
    try:
        return _chosen_lang(request, headers) or language_of(headers.get("accept-language"))
    except AttributeError:
        return "en"


def _chosen_lang(request: object, headers: object) -> str | None:
    """The language switch's choice in the request's Cookie header or, failing that, its parsed cookies."""
    try:
        chosen = cookie_lang(headers.get("cookie"))  # type: ignore[attr-defined]
        if chosen is None:
            value = (getattr(request, "cookies", None) or {}).get(LANG_COOKIE)
            chosen = value if value in LANGUAGES else None
        return chosen
    except (AttributeError, TypeError):
        return None


# ---- message catalogue -------------------------------------------------------------------------------------
class Catalogue:
    """English message templates (``{}`` = a variable part) and their translations, matched by regex."""

    def __init__(self, data: dict[str, dict[str, str]]) -> None:
        self.data = data
        self._patterns: dict[str, list[tuple[re.Pattern[str], str]]] = {}

    @classmethod
    def load(cls, path: Path = LOCALES_DIR / ERRORS_FILE) -> Catalogue:
        return cls(json.loads(path.read_text(encoding="utf-8")) if path.exists() else {})

    def patterns(self, lang: str) -> list[tuple[re.Pattern[str], str]]:
        if lang not in self._patterns:
            items = sorted(self.data.get(lang, {}).items(), key=lambda kv: -len(kv[0].replace("{}", "")))
            self._patterns[lang] = [
                (re.compile("^" + "(.*?)".join(map(re.escape, en.split("{}"))) + "$", re.DOTALL), target)
                for en, target in items
            ]
        return self._patterns[lang]

    def translate(self, message: str, lang: str, depth: int = 0) -> str:
        """``message`` in ``lang`` when a template matches (variable parts translated too), else unchanged."""
        table = self.data.get(lang)
        if not table or not message or depth > 3:
            return message
        if message in table:
            return table[message]
        for pattern, target in self.patterns(lang):
            match = pattern.match(message)
            if match:
                parts = [self.translate(part, lang, depth + 1) for part in match.groups()]
                try:
                    return target.format(*parts)
                except (IndexError, KeyError, ValueError):
                    return message
        return message


@functools.cache
def catalogue() -> Catalogue:
    return Catalogue.load()


def localize(message: str, lang: str | None = None) -> str:
    """Translate a server-built English message into ``lang`` (default: the current request's language)."""
    lang = lang or request_lang()
    return message if lang == "en" else catalogue().translate(message, lang)
