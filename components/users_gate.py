"""The login's gate on Gradio's own routes (pure ASGI middleware, added by ``app.launch_kwargs``).

- An ``Authorization: Bearer <key>`` from ``LMW_API_KEYS`` logs the request in as the key's user (Gradio's login
  cookie is added for it), so programs can call the Gradio API with a key instead of a password.
- With login (``LMW_USERS``), a ``run:<id>`` anywhere in an event's inputs (any tab, any model field, the Gradio
  API) must be the user's own run, or the user an admin: another user's run is refused with HTTP 403 before
  any handler runs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from components import asgi_helpers as asgi
from components.asgi_helpers import ASGIApp, Receive, Scope, Send
from components.i18n import cookie_lang
from pipelines.messages import render

RUN_REF = re.compile(r"^run:([A-Za-z0-9][A-Za-z0-9_.-]{0,99})$")


def run_refs(value: Any) -> list[str]:
    """The run ids of every ``run:<id>`` string in ``value`` (lists and dicts searched ``MAX_DEPTH`` deep)."""
    return [match.group(1) for text in asgi.strings(value) if (match := RUN_REF.match(text.strip()))]


class UsersGate:
    """Pure ASGI middleware; ``ctx`` gives the users (``ctx.users``) and the runs (``ctx.runs``)."""

    def __init__(self, app: ASGIApp, ctx: Any) -> None:
        self.app = app
        self.ctx = ctx
        self.tokens: dict[str, str] = {}  # user -> the login token made for that user's API key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user = self._key_login(scope)
        if self.ctx.users.enabled and scope.get("method") == "POST" and asgi.EVENT_PATHS.search(scope.get("path", "")):
            body, receive = await asgi.buffered(receive)
            refused = self._refused(scope, body, user)
            if refused is not None:
                await asgi.send_json(send, 403, {"detail": refused, "error": refused})
                return
        await self.app(scope, receive, send)

    def _key_login(self, scope: Scope) -> str | None:
        """With a valid bearer key and login on: add the key user's login cookie to the request; the user."""
        given = asgi.header(scope, b"authorization")
        if not given.lower().startswith("bearer ") or not self.ctx.users.keys:
            return None
        user = self.ctx.users.user_of_key(given[7:].strip())
        app = scope.get("app")
        if user is None or app is None or not hasattr(app, "tokens") or not self.ctx.users.enabled:
            return user
        asgi.log_in(scope, app, self.tokens, user)
        return user

    def _user(self, scope: Scope) -> str:
        """The logged-in user of the request (from Gradio's login cookie), or "" for none."""
        return asgi.cookie_user(scope)

    def _refused(self, scope: Scope, body: bytes, user: str | None) -> str | None:
        """The refusal sentence when the event names another user's run, else None."""
        if not body or len(body) > asgi.MAX_SCANNED_BYTES or b"run:" not in body:
            return None
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return None
        data = payload.get("data", payload) if isinstance(payload, dict) else payload
        who = user or self._user(scope)
        for run_id in run_refs(data):
            if self.ctx.runs.folder_of(run_id).is_dir() and not self.ctx.runs.visible(run_id, who):
                lang = cookie_lang(asgi.header(scope, b"cookie")) or "en"
                return render("users.error.not_yours", lang, {"run": run_id})
        return None


def users_middleware(ctx: Any) -> list:
    """``app_kwargs["middleware"]`` entries for ``Blocks.launch``: the gate, when there are logins or keys."""
    from starlette.middleware import Middleware

    if not (ctx.users.enabled or ctx.users.keys):
        return []
    return [Middleware(UsersGate, ctx=ctx)]
