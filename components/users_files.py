"""Each user's downloads are theirs, and "Sign in with Hugging Face" on a Space (pure ASGI middleware, added by
``app.launch_kwargs``, placed before the users' gate).

- With login on, Gradio's file route (``/gradio_api/file=<path>``) serves a file under the per-user outputs folder
  (:mod:`pipelines.user_files`) only to its owner or an admin; anyone else gets HTTP 403 with one sentence. An
  event whose inputs name such a file of another user (a path typed into the API) is refused the same way.
- With ``LMW_HF_OAUTH`` (a Space with ``hf_oauth: true``), the Hugging Face user of the request's OAuth session is
  logged in for Gradio: a login token for that name is added to the request, so ``gr.Request.username``, the
  owner checks, quotas and files see the Hugging Face username exactly like an ``LMW_USERS`` login.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

from components import asgi_helpers as asgi
from components.asgi_helpers import ASGIApp, Receive, Scope, Send
from components.i18n import cookie_lang
from pipelines.messages import render
from pipelines.user_files import may_download, outputs_root

FILE_ROUTE = re.compile(r"/gradio_api/file(?:=|/)(.+)$")


def oauth_username(session: Any) -> str | None:
    """The Hugging Face username of a Gradio OAuth session (``oauth_info`` not expired), else None."""
    info = session.get("oauth_info") if isinstance(session, MutableMapping) else None
    if not isinstance(info, dict):
        return None
    expires = info.get("expires_at")
    if isinstance(expires, (int, float)) and expires < time.time():
        return None
    profile = info.get("userinfo") or {}
    name = profile.get("preferred_username") if isinstance(profile, dict) else None
    return str(name) if name else None


def profile_user(profile: Any) -> str | None:
    """The user of a ``gr.OAuthProfile`` (its ``username``), None for no profile."""
    name = getattr(profile, "username", None) if profile is not None else None
    return str(name) if name else None


class UserFilesGate:
    """Pure ASGI middleware; ``ctx.users`` gives the logins, admins and keys; ``roots`` the outputs folders."""

    def __init__(self, app: ASGIApp, ctx: Any, roots: Iterable[str] | None = None) -> None:
        self.app = app
        self.ctx = ctx
        self.roots = tuple(roots) if roots is not None else (str(outputs_root()),)
        self.tokens: dict[str, str] = {}  # HF user -> the Gradio login token made for them

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.ctx.users.enabled:
            await self.app(scope, receive, send)
            return
        self._oauth_login(scope)
        match = FILE_ROUTE.search(scope.get("path", ""))
        if match and not self.allowed([match.group(1)], self.user(scope)):
            await self._refuse(scope, send)
            return
        if scope.get("method") == "POST" and asgi.EVENT_PATHS.search(scope.get("path", "")):
            body, receive = await asgi.buffered(receive)
            if body and len(body) <= asgi.MAX_SCANNED_BYTES and b"lmw-outputs" in body:
                try:
                    found = asgi.strings(json.loads(body))
                except (ValueError, RecursionError):
                    found = []
                if not self.allowed(found, self.user(scope)):
                    await self._refuse(scope, send)
                    return
        await self.app(scope, receive, send)

    def allowed(self, paths: Iterable[str], user: str) -> bool:
        """Whether ``user`` may read every one of ``paths`` (strings that are no outputs path pass)."""
        admin = self.ctx.users.is_admin(user)
        return all(may_download(p, user, admin, self.roots) for p in paths if "lmw-outputs" in p)

    def user(self, scope: Scope) -> str:
        """The request's user: its bearer key's, its Gradio login cookie's (also set for OAuth), or ``""``."""
        given = asgi.header(scope, b"authorization")
        if given.lower().startswith("bearer ") and self.ctx.users.keys:
            name = self.ctx.users.user_of_key(given[7:].strip())
            if name:
                return name
        return asgi.cookie_user(scope)

    def _oauth_login(self, scope: Scope) -> None:
        """With OAuth on and a signed-in session: log its Hugging Face user in for Gradio (a login token)."""
        app = scope.get("app")
        if not getattr(self.ctx.users, "oauth", False) or app is None or not hasattr(app, "tokens"):
            return
        name = oauth_username(scope.get("session"))
        if not name:
            return
        asgi.log_in(scope, app, self.tokens, name)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        lang = cookie_lang(asgi.header(scope, b"cookie")) or "en"
        sentence = render("users_files.error.not_yours", lang, {})
        await asgi.send_json(send, 403, {"detail": sentence, "error": sentence})


def user_files_middleware(ctx: Any) -> list:
    """``app_kwargs["middleware"]`` entries for ``Blocks.launch``: the gate, when there are logins (or OAuth)."""
    from starlette.middleware import Middleware

    if ctx is None or not ctx.users.enabled:
        return []
    return [Middleware(UserFilesGate, ctx=ctx)]


def login_button(ctx: Any) -> Any:
    """A "Sign in with Hugging Face" button when OAuth is on (``LMW_HF_OAUTH``), else nothing (call inside the
    Blocks). Gradio adds its OAuth routes when the app has one."""
    if ctx is None or not getattr(ctx.users, "oauth", False):
        return None
    import gradio as gr
    from gradio.context import Context

    button = gr.LoginButton(elem_id="hf-login", size="sm", scale=0, min_width=200)
    check, _triggers, _inputs = button.load_event_to_attach  # the page-load check of the signed-in user
    button.load_event_to_attach = None
    if Context.root_block is not None:  # the same check, without a public API endpoint
        Context.root_block.load(check, None, button, api_visibility="private", show_progress="hidden")
    return button
