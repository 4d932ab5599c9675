"""Remote OpenAI-compatible endpoints: a registry on the app context, model listing with reachability and latency.

A remote model is referenced as ``remote:<endpoint>/<model>`` (the model part may itself contain ``/``).
Endpoints come from ``LMW_BACKENDS`` (``name=url[|key];name2=url2``) and can be added at run time. An
endpoint's key is never logged, shown back or returned: ``repr`` hides it and views only say whether one is set.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipelines.engines.config import EnginesConfig
from pipelines.errors import InputError, ModelLoadError
from pipelines.messages import Msg

if TYPE_CHECKING:
    import httpx

REMOTE_PREFIX = "remote:"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def is_remote(ref: str | None) -> bool:
    return str(ref or "").strip().startswith(REMOTE_PREFIX)


def split_ref(ref: str) -> tuple[str, str]:
    """``remote:<endpoint>/<model>`` -> (endpoint, model)."""
    body = str(ref or "").strip().removeprefix(REMOTE_PREFIX)
    name, _, model = body.partition("/")
    if not name or not model.strip():
        raise InputError("engines.error.bad_ref", ref=str(ref)[:200])
    return name, model.strip()


def base_url(url: str) -> str:
    """The endpoint's ``/v1`` base: ``http://host:8000`` and ``http://host:8000/v1/`` both give ``.../v1``."""
    url = (url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InputError("engines.error.bad_url", url=url[:200])
    if "@" in parts.netloc:  # credentials in the URL would be shown back: use the key field
        raise InputError("engines.error.url_credentials")
    return url if url.endswith("/v1") else url + "/v1"


@dataclass
class ProbeResult:
    """What the last look at an endpoint found."""

    ok: bool = False
    latency_ms: float | None = None
    models: list[str] = field(default_factory=list)
    error: Msg | None = None
    at: float = 0.0


@dataclass
class RemoteEndpoint:
    """One OpenAI-compatible server. ``key`` stays out of ``repr`` and of every view."""

    name: str
    url: str  # the /v1 base
    key: str = field(default="", repr=False)
    probe: ProbeResult = field(default_factory=ProbeResult)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def view(self) -> dict[str, Any]:
        """Plain, key-free data for the UI and logs."""
        return {"name": self.name, "url": self.url, "key_set": bool(self.key), "reachable": self.probe.ok,
                "latency_ms": self.probe.latency_ms, "models": list(self.probe.models),
                "error": self.probe.error}


def parse_backends(spec: str) -> list[tuple[str, str, str]]:
    """``name=url[|key];name2=url2`` -> [(name, url, key)]; empty items are skipped."""
    out = []
    for item in (spec or "").split(";"):
        item = item.strip()
        if not item:
            continue
        name, sep, rest = item.partition("=")
        if not sep:
            raise InputError("engines.error.bad_backends", item=name.strip()[:60])
        url, _, key = rest.partition("|")
        out.append((name.strip(), url.strip(), key.strip()))
    return out


class Backends:
    """The registry of remote endpoints (one per app, on the context); thread-safe."""

    def __init__(self, config: EnginesConfig | None = None) -> None:
        self.config = config or EnginesConfig.from_env()
        self._endpoints: dict[str, RemoteEndpoint] = {}
        self._lock = threading.Lock()
        for name, url, key in parse_backends(self.config.backends):
            self.add(name, url, key)

    def add(self, name: str, url: str, key: str = "") -> RemoteEndpoint:
        """Add (or replace) an endpoint; an empty ``key`` keeps the key of the endpoint it replaces."""
        name = (name or "").strip()
        if not NAME.match(name):
            raise InputError("engines.error.bad_name", name=name[:60])
        endpoint = RemoteEndpoint(name, base_url(url), (key or "").strip())
        with self._lock:
            old = self._endpoints.get(name)
            if old is not None and not endpoint.key and old.url == endpoint.url:
                endpoint.key = old.key
            self._endpoints[name] = endpoint
        return endpoint

    def remove(self, name: str) -> bool:
        with self._lock:
            return self._endpoints.pop(name, None) is not None

    def get(self, name: str) -> RemoteEndpoint:
        with self._lock:
            endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise ModelLoadError("engines.error.unknown_endpoint", name=name[:60])
        return endpoint

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._endpoints)

    def endpoints(self) -> list[RemoteEndpoint]:
        with self._lock:
            return [self._endpoints[n] for n in sorted(self._endpoints)]

    def client(self, read_timeout_s: float | None = None) -> httpx.Client:
        import httpx

        c = self.config
        timeout = httpx.Timeout(connect=c.connect_timeout_s, read=read_timeout_s or c.read_timeout_s,
                                write=c.connect_timeout_s, pool=c.connect_timeout_s)
        return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)

    def probe(self, name: str) -> ProbeResult:
        """GET ``/v1/models`` of one endpoint: reachability, latency and model ids (kept on the endpoint)."""
        from pipelines.engines.remote_errors import http_error, server_message, transport_error

        endpoint = self.get(name)
        started = time.perf_counter()
        result = ProbeResult(at=time.time())
        try:
            with self.client(self.config.probe_timeout_s) as client:
                response = client.get(endpoint.url + "/models", headers=endpoint.headers())
            result.latency_ms = round((time.perf_counter() - started) * 1000, 1)
            if response.status_code != 200:
                result.error = http_error(response.status_code, endpoint.name, "", server_message(response)).msg
            else:
                data = response.json().get("data", [])
                result.models = [str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id")]
                result.ok = True
        except (ValueError, AttributeError):
            result.error = Msg.of("engines.error.bad_models_list", name=endpoint.name)
        except Exception as exc:  # noqa: BLE001 - every transport failure becomes one keyed sentence
            result.error = transport_error(exc, endpoint.name).msg
        endpoint.probe = result
        return result

    def probe_all(self) -> list[RemoteEndpoint]:
        for name in self.names():
            self.probe(name)
        return self.endpoints()

    def choices(self) -> list[tuple[str, str]]:
        """(label, reference) of every model the endpoints listed at their last probe."""
        return [(f"{m} ({e.name})", f"{REMOTE_PREFIX}{e.name}/{m}") for e in self.endpoints() for m in e.probe.models]



def backends_of(ctx: Any) -> Backends:
    """The context's registry of remote endpoints (``ctx.backends``)."""
    return ctx.backends


def use_backends(ctx: Any, registry: Backends) -> Backends:
    """Make ``registry`` the context's (tests, or an app that builds its own); returns it."""
    ctx.backends = registry
    return registry
