"""OpenAI-compatible HTTP endpoints on the app's own server: ``/v1/models``, ``/v1/chat/completions``,
``/v1/completions`` (streaming as SSE ``data: ...`` chunks ending with ``data: [DONE]``).

``app.py`` adds them after launch: ``demo.app.include_router(openai_routes(ctx))``. Errors are OpenAI-style
objects ``{"error": {"message", "type", "param", "code"}}`` with the HTTP status: 400 bad request, 401 bad key,
404 unknown model, 413 body too large, 429 queue full, 500 failure. A bearer key is required when ``LMW_API_KEY``
is set. A body is read up to :func:`max_body_bytes` (room for the prompt cap written with JSON escapes) and refused
beyond it before it is held in memory; a body nested too deeply to parse is a 400 like any other bad JSON.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from components.openai_schema import body_docs, list_docs
from pipelines.context import AppContext
from pipelines.engines.config import EnginesConfig
from pipelines.engines.openai_server import OpenAIService
from pipelines.engines.openai_wire import error_body
from pipelines.errors import BusyError, InputError, LimitError, ModelLoadError, WorkbenchError
from pipelines.generation.settings import Mode
from pipelines.messages import Msg
from pipelines.table_sniff import size_msg

log = logging.getLogger(__name__)
STATUS_OF_KEY = MappingProxyType({"engines.error.unknown_model": (404, "invalid_request_error", "model_not_found"),
                                   "users.error.not_yours": (403, "invalid_request_error", "model_not_owned"),
                                   "hostile.error.body_too_big": (413, "invalid_request_error", "request_too_large")})
JSON_ESCAPE_BYTES = 6  # the most bytes one prompt character takes in a JSON body ("\uXXXX")


def max_body_bytes(ctx: AppContext) -> int:
    """The largest ``/v1`` request body read: the prompt cap written with JSON escapes, plus 1 MiB."""
    return ctx.limits.max_prompt_chars * JSON_ESCAPE_BYTES + 2**20


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body, reading at most ``limit`` bytes; :class:`InputError` for a body too large
    (``Content-Length`` or the bytes received), not JSON, or nested too deeply."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise LimitError("hostile.error.body_too_big", size=size_msg(int(declared)), limit=size_msg(limit))
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise LimitError("hostile.error.body_too_big", size=size_msg(len(data)), limit=size_msg(limit))
    try:
        return json.loads(bytes(data))
    except (ValueError, RecursionError):
        raise InputError("engines.error.bad_json") from None


def error_response(exc: BaseException) -> JSONResponse:
    """An OpenAI-style error for ``exc`` (keyed errors give their English sentence and key)."""
    if isinstance(exc, WorkbenchError):
        status, kind, code = STATUS_OF_KEY.get(exc.key, _status(exc))
        return JSONResponse(error_body(exc.render("en"), kind, code or exc.key), status_code=status)
    message = Msg.of("engines.error.internal", kind=type(exc).__name__).render("en")
    return JSONResponse(error_body(message, "server_error", "internal_error"), status_code=500)


def _status(exc: WorkbenchError) -> tuple[int, str, str | None]:
    if isinstance(exc, InputError):
        return 400, "invalid_request_error", None
    if isinstance(exc, BusyError):
        return 429, "rate_limit_error", "queue_full"
    if isinstance(exc, ModelLoadError):
        return 500, "server_error", None
    return 500, "server_error", None


def _sse(chunks: Iterator[dict[str, Any]]) -> Iterator[str]:
    """SSE lines; an error after the first byte is sent as a final ``data: {"error": ...}`` event."""
    try:
        for chunk in chunks:
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    except Exception as exc:  # noqa: BLE001 - the status line is sent already: report in the stream
        if not isinstance(exc, WorkbenchError):
            log.exception("an OpenAI-compatible stream failed")
        yield f"data: {error_response(exc).body.decode()}\n\n"
        return
    yield "data: [DONE]\n\n"


def openai_routes(ctx: AppContext, config: EnginesConfig | None = None) -> APIRouter:
    """The ``/v1`` router over one :class:`OpenAIService` for ``ctx``."""
    api = OpenAIService(ctx, config)
    router = APIRouter(prefix="/v1")
    body_limit = max_body_bytes(ctx)
    gate = ApiGate(ctx, api.config.api_key)

    @router.get("/models", **list_docs())
    def models(request: Request) -> Any:
        caller = gate.check(request)
        return caller.denied or api.models(caller.user)

    @router.get("/models/{model_id:path}", **list_docs())
    def model(model_id: str, request: Request) -> Any:
        caller = gate.check(request)
        if caller.denied:
            return caller.denied
        found = [m for m in api.models(caller.user)["data"] if m["id"] == model_id]
        return found[0] if found else error_response(ModelLoadError("engines.error.unknown_model", model=model_id))

    async def generate(request: Request, mode: str) -> Any:
        caller = gate.check(request)
        if caller.denied:
            return caller.denied
        try:
            body = await read_json(request, body_limit)
        except InputError as exc:
            return error_response(exc)
        try:
            parsed = api.parse(body, mode, caller.user)
            if not parsed.stream:
                return await run_in_threadpool(api.complete, parsed)
            _, chunks = await run_in_threadpool(api.first_and_rest, parsed)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI-style error
            return error_response(exc)
        return StreamingResponse(_sse(chunks), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.post("/chat/completions", **body_docs(Mode.CHAT))
    async def chat_completions(request: Request) -> Any:
        return await generate(request, Mode.CHAT)

    @router.post("/completions", **body_docs(Mode.COMPLETION))
    async def completions(request: Request) -> Any:
        return await generate(request, Mode.COMPLETION)

    return router


@dataclass(frozen=True)
class Caller:
    """Who called the API: ``user`` for owner checks (None without login), or the ``denied`` answer."""

    user: str | None = None
    denied: JSONResponse | None = None


class ApiGate:
    """Bearer keys (``LMW_API_KEY``; ``LMW_API_KEYS`` mapped to users) and the per-user rate limit (429 with
    ``Retry-After``). Keys are compared in constant time and never logged."""

    def __init__(self, ctx: AppContext, key: str) -> None:
        from pipelines.ratelimit import RateLimiter

        self.ctx, self.key = ctx, key
        self.limiter = RateLimiter.from_env()

    def check(self, request: Request) -> Caller:
        users = self.ctx.users
        login = bool(self.ctx.config.password or users.enabled)
        if not self.key and not users.keys:
            if login:  # the app has a login: its API must not be open
                return Caller(denied=_unauthorised("engines.error.key_required"))
            return Caller()
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        name = users.user_of_key(given)
        if name is None and not (self.key and hmac.compare_digest(given.encode(), self.key.encode())):
            return Caller(denied=_unauthorised("engines.error.bad_key"))
        wait = self.limiter.allow(name) if name is not None else 0  # per named user (LMW_API_KEYS)
        if wait:
            message = Msg.of("users.error.rate_limited", seconds=wait, env="LMW_RATE_LIMIT").render("en")
            return Caller(denied=JSONResponse(error_body(message, "rate_limit_error", "rate_limit_exceeded"),
                                              status_code=429, headers={"Retry-After": str(wait)}))
        # with logins, a key's user sees their own runs; the single LMW_API_KEY belongs to nobody
        return Caller(user=(name or "") if users.enabled else None)


def _unauthorised(key: str) -> JSONResponse:
    message = Msg.of(key).render("en")
    return JSONResponse(error_body(message, "invalid_request_error", "invalid_api_key"), status_code=401)
