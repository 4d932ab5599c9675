"""UI strings: every ``assets/locales/*.json`` holds ``{"en": {...}, "zh-CN": {...}}`` for one tab.

Labels go through :func:`t` (translated in the browser). Messages built on the server (errors, status lines) go
through :func:`text` (a key) or :func:`say` (a pipeline's :class:`~pipelines.messages.Msg` or keyed note).
Every error and note carries a key and its parameters, so rewording an English text never loses its translation
(``tests/test_house.py`` fails on a key without an English or a Chinese text).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from pipelines.messages import LANGUAGES, LOCALES_DIR, Msg, load_texts, render, texts

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
    return keyed.render(lang) if isinstance(keyed, Msg) else str(message)


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
