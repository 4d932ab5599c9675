"""Remote failures as one keyed sentence each: unreachable, TLS, 401, 404, 429, timeout, a broken stream."""

from __future__ import annotations

from typing import Any

from pipelines.errors import ModelLoadError, WorkbenchError

RETRYABLE = frozenset({429, 502, 503})


def http_error(status: int, endpoint: str, model: str = "", detail: str = "") -> WorkbenchError:
    """The error for an HTTP status an endpoint answered with (``detail``: the server's own message)."""
    if status in (401, 403):
        return ModelLoadError("engines.error.remote_auth", name=endpoint, status=status)
    if status == 404:
        return ModelLoadError("engines.error.remote_not_found", name=endpoint, model=model or "?")
    if status == 429:
        return ModelLoadError("engines.error.remote_busy", name=endpoint)
    if status == 400:
        return ModelLoadError("engines.error.remote_rejected", name=endpoint, detail=detail or "?")
    return ModelLoadError("engines.error.remote_status", name=endpoint, status=status)


def transport_error(exc: BaseException, endpoint: str) -> WorkbenchError:
    """The error for an exception raised while talking to an endpoint (httpx's, or a closed stream)."""
    import httpx

    if isinstance(exc, WorkbenchError):
        return exc
    if isinstance(exc, httpx.ConnectError) and _tls_failure(exc):
        return ModelLoadError("engines.error.remote_tls", name=endpoint)
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return ModelLoadError("engines.error.remote_unreachable", name=endpoint)
    if isinstance(exc, httpx.TimeoutException):
        return ModelLoadError("engines.error.remote_timeout", name=endpoint)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return ModelLoadError("engines.error.stream_truncated", name=endpoint)
    return ModelLoadError("engines.error.remote_failed", name=endpoint, kind=type(exc).__name__)


def _tls_failure(exc: BaseException) -> bool:
    """Whether a connection failed in its TLS handshake (a certificate, or a server that does not speak TLS)."""
    import ssl

    seen: BaseException | None = exc
    for _ in range(8):  # httpx wraps httpcore's error, which wraps the ssl module's
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError) or "ssl" in type(seen).__name__.lower():
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    return "certificate" in text or "ssl" in text


def server_message(response: Any) -> str:
    """The server's own error message in an error answer (logs and the 404/400 sentence), at most 200 characters:
    OpenAI's ``{"error": {"message"}}``, a plain ``{"error"}`` or ``{"detail"}``, else the body's text."""
    try:
        data = response.json()
        error = data.get("error") if isinstance(data, dict) else None
        return str((error.get("message") if isinstance(error, dict) else error) or data.get("detail") or "")[:200]
    except Exception:  # noqa: BLE001 - not JSON
        try:
            return str(response.text)[:200]
        except Exception:  # noqa: BLE001 - a streamed body that was not read
            return ""
