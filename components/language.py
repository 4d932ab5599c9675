"""The language switch in the header: Auto (the browser's language), English or 简体中文, kept in a cookie.

Gradio picks the UI language once, from ``navigator.language``, before any of the app's own scripts run. So the
choice lives in the ``lmw_lang`` cookie and :class:`LanguageMiddleware` writes a tiny script at the top of the page's
``<head>`` that makes ``navigator.language`` report it; server-built messages read the same cookie
(:func:`components.i18n.request_lang`). Changing the selector sets the cookie in the browser and reloads the page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import gradio as gr

from components.i18n import LANG_COOKIE, LANGUAGES, cookie_lang, t

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

AUTO = "auto"
ONE_YEAR_S = 365 * 24 * 3600
HEAD = re.compile(rb"<head(\s[^>]*)?>", re.IGNORECASE)

# Sets the cookie (or expires it for Auto) and reloads, so Gradio starts again in the chosen language.
SET_LANGUAGE_JS = f"""(lang) => {{
    const keep = lang === "en" || lang === "zh-CN";
    document.cookie = "{LANG_COOKIE}=" + (keep ? lang : "") + "; path=/; max-age=" + (keep ? {ONE_YEAR_S} : 0)
        + "; SameSite=Lax";
    window.location.reload();
}}"""

# The selector shows the saved choice ("auto" when there is none).
READ_LANGUAGE_JS = f"""() => {{
    const found = document.cookie.match(/(?:^|;\\s*){LANG_COOKIE}=([^;]*)/);
    const lang = found ? found[1].trim() : "";
    return lang === "en" || lang === "zh-CN" ? lang : "{AUTO}";
}}"""


def override_script(lang: str) -> bytes:
    """The ``<script>`` making ``navigator.language(s)`` report ``lang`` (one of :data:`LANGUAGES` only)."""
    if lang not in LANGUAGES:
        raise ValueError(lang)  # not one of LANGUAGES: never written into the page
    value = json.dumps(lang)
    return (
        f"<script data-lmw-lang={value}>(function(l){{try{{var p=Navigator.prototype;"
        f'Object.defineProperty(p,"language",{{configurable:true,get:function(){{return l}}}});'
        f'Object.defineProperty(p,"languages",{{configurable:true,get:function(){{return[l]}}}});'
        f"}}catch(e){{}}document.documentElement.lang=l}})({value});</script>"
    ).encode()


def inject(html: bytes, lang: str) -> bytes:
    """``html`` with the language script right after its ``<head>`` tag (unchanged when it has none)."""
    match = HEAD.search(html)
    if match is None:
        return html
    return html[: match.end()] + override_script(lang) + html[match.end() :]


class LanguageMiddleware:
    """Pure ASGI middleware: on ``GET`` of the page (``/``) with the cookie set to ``en``/``zh-CN``, put the
    language script into the HTML. Every other request, and the page without the cookie, passes through untouched.
    """

    def __init__(self, app: ASGIApp, paths: tuple[str, ...] = ("/",)) -> None:
        self.app = app
        self.paths = paths

    def _page_lang(self, scope: Scope) -> str | None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            return None
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if (path or "/") not in self.paths:
            return None
        cookies = b"; ".join(value for name, value in scope.get("headers", []) if name.lower() == b"cookie")
        return cookie_lang(cookies.decode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lang = self._page_lang(scope)
        if lang is None:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_page(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = {name.lower(): value for name, value in message.get("headers", [])}
                is_html = headers.get(b"content-type", b"").startswith(b"text/html")
                if message.get("status") == 200 and is_html and b"content-encoding" not in headers:
                    start = message  # hold it until the whole body is here
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = inject(b"".join(chunks), lang)
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, send_page)


def language_selector(demo: gr.Blocks) -> gr.Dropdown:
    """The header's language dropdown: shows the saved choice on load; choosing one saves it and reloads."""
    selector = gr.Dropdown(
        choices=[(t("language.auto"), AUTO), ("English", "en"), ("简体中文", "zh-CN")],
        value=AUTO,
        label=t("language.label"),
        interactive=True,
        filterable=False,
        scale=0,
        min_width=200,
        elem_id="language-select",
    )
    # .input (a user's choice), not .change: setting the saved value on load must not reload the page again.
    selector.input(None, selector, None, js=SET_LANGUAGE_JS)
    demo.load(None, None, selector, js=READ_LANGUAGE_JS)
    return selector


def language_middleware() -> list:
    """``app_kwargs["middleware"]`` for ``Blocks.launch`` (Gradio's ``App`` is a FastAPI app)."""
    from starlette.middleware import Middleware

    return [Middleware(LanguageMiddleware)]
