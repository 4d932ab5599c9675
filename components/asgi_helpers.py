"""Small ASGI pieces the app's middlewares share (the users' gate, the download gate): the types, which requests
are Gradio events, a header's value, a request body read once and replayed to the app, the strings of an event's
inputs, and a JSON answer."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EVENT_PATHS = re.compile(r"/gradio_api/(queue/join|call/|run/|api/)")  # the routes that run an event
MAX_SCANNED_BYTES = 64 * 2**20  # larger bodies are passed on unscanned (Gradio refuses them anyway)
MAX_DEPTH = 8


def strings(value: Any, depth: int = 0) -> list[str]:
    """Every string in ``value`` (lists and dicts searched ``MAX_DEPTH`` deep)."""
    if isinstance(value, str):
        return [value]
    if depth >= MAX_DEPTH:
        return []
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return [s for item in items for s in strings(item, depth + 1)]


def log_in(scope: Scope, app: Any, tokens: dict[str, str], user: str) -> None:
    """Log ``user`` in for Gradio on this request: their login token (one per user, kept in ``tokens``) is
    registered with the Gradio ``app`` and added to the request's cookies."""
    token = tokens.setdefault(user, secrets.token_urlsafe(24))
    app.tokens[token] = user
    cookie_id = getattr(app, "cookie_id", "")
    cookie = f"access-token-{cookie_id}={token}; access-token-unsecure-{cookie_id}={token}"
    old = header(scope, b"cookie")
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"cookie"]
    headers.append((b"cookie", f"{old}; {cookie}".strip("; ").encode("latin-1")))
    scope["headers"] = headers


def header(scope: Scope, name: bytes) -> str:
    """The value of header ``name`` (lower case), or ``""``."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


async def buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a ``receive`` that gives it again to the app."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return b"", receive
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body, sent = b"".join(chunks), False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def send_json(send: Send, status: int, content: dict[str, Any]) -> None:
    """Answer with ``content`` as JSON and HTTP ``status``."""
    data = json.dumps(content, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def cookie_user(scope: Scope) -> str:
    """The user Gradio's login cookie names (its ``access-token`` mapped by the app's ``tokens``), or ``""``."""
    app = scope.get("app")
    cookie_id = getattr(app, "cookie_id", "")
    for part in header(scope, b"cookie").split(";"):
        name, _, value = part.strip().partition("=")
        if name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            user = getattr(app, "tokens", {}).get(value.strip())
            if user:
                return str(user)
    return ""
