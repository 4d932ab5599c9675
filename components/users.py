"""Who is asking: the logged-in user of a Gradio request (``gr.Request.username``), for owner checks."""

from __future__ import annotations

from typing import Any


def users_enabled(ctx: Any) -> bool:
    """Whether the app has several logins (``LMW_USERS``): only then do runs have owners."""
    users = getattr(ctx, "users", None)
    return bool(getattr(users, "enabled", False))


def user_of(ctx: Any, request: Any = None) -> str | None:
    """The request's user with login on (``""`` for a request without one: it sees no one's data); None without
    login (single-user: nothing is checked). ``request`` None: the request being handled now (if any)."""
    if not users_enabled(ctx):
        return None
    if request is None:  # the request Gradio is handling now, if any
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    return str(getattr(request, "username", None) or "")
