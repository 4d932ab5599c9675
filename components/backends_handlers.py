"""Handlers of the Backends section (remote OpenAI-compatible endpoints): plain values in, plain values out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.context import AppContext
from pipelines.engines.remote import Backends, RemoteEndpoint, backends_of
from pipelines.errors import WorkbenchError
from pipelines.messages import render
from pipelines.secrets_store import SecretFile

SECRETS_FILE = "backends.json"  # remote endpoints added in the UI, with their keys
COLUMNS = ("name", "url", "key", "reachable", "latency", "models", "error")


@dataclass(frozen=True)
class EndpointTable:
    """The endpoints as a table in one language (headers and rows); the key is only ever 'set' or 'none'."""

    headers: list[str]
    rows: list[list[Any]]

    def as_value(self) -> dict[str, Any]:
        return {"headers": self.headers, "data": self.rows or [[""] * len(self.headers)]}


class BackendsHandlers:
    """Add, remove and check remote endpoints; the registry lives on the app context."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._restore()

    # ---- endpoints added here are kept (keys too) in a 0600 file outside the runs -----------------------------
    @property
    def secrets(self) -> SecretFile | None:
        data_dir = getattr(getattr(self.ctx, "config", None), "data_dir", None)
        return SecretFile.in_data_dir(data_dir, SECRETS_FILE) if data_dir is not None else None

    def _restore(self) -> None:
        """Add the endpoints saved by an earlier run of the app (those from ``LMW_BACKENDS`` win)."""
        saved = self.secrets.read().get("endpoints", {}) if self.secrets is not None else {}
        known = set(self.backends.names())
        for name, item in saved.items() if isinstance(saved, dict) else ():
            if name not in known and isinstance(item, dict):
                try:
                    self.backends.add(name, str(item.get("url", "")), str(item.get("key", "")))
                except WorkbenchError:
                    continue

    def _save(self, name: str, endpoint: RemoteEndpoint | None) -> None:
        if self.secrets is None:
            return
        stored = self.secrets.read()
        endpoints = stored.get("endpoints", {}) if isinstance(stored.get("endpoints"), dict) else {}
        if endpoint is None:
            endpoints.pop(name, None)
        else:
            endpoints[name] = {"url": endpoint.url, "key": endpoint.key}
        self.secrets.write({**stored, "endpoints": endpoints})

    @property
    def backends(self) -> Backends:
        return backends_of(self.ctx)

    def table(self, lang: str = "en") -> EndpointTable:
        """The endpoints as their last check left them (no network)."""
        headers = [render(f"engines.col.{c}", lang) for c in COLUMNS]
        return EndpointTable(headers, [self._row(e, lang) for e in self.backends.endpoints()])

    @staticmethod
    def _row(endpoint: RemoteEndpoint, lang: str) -> list[Any]:
        view = endpoint.view()
        if view["error"] is not None:
            state = render("engines.state.unreachable", lang)
        elif view["latency_ms"] is None:
            state = render("engines.state.unchecked", lang)
        else:
            state = render("engines.state.ok", lang)
        models = ", ".join(view["models"][:20]) + (" …" if len(view["models"]) > 20 else "")
        return [view["name"], view["url"], render("engines.key.set" if view["key_set"] else "engines.key.none", lang),
                state, "" if view["latency_ms"] is None else view["latency_ms"], models,
                view["error"].render(lang) if view["error"] is not None else ""]

    def add(self, name: str, url: str, key: str, lang: str = "en") -> EndpointTable:
        """Add (or replace) an endpoint and check it at once."""
        endpoint = self.backends.add(name, url, key)
        self._save(endpoint.name, endpoint)
        self.backends.probe(endpoint.name)
        return self.table(lang)

    def remove(self, name: str, lang: str = "en") -> EndpointTable:
        self.backends.remove((name or "").strip())
        self._save((name or "").strip(), None)
        return self.table(lang)

    def check(self, lang: str = "en") -> EndpointTable:
        """Ask every endpoint for its models (reachability and latency)."""
        self.backends.probe_all()
        return self.table(lang)

    def names(self) -> list[str]:
        return self.backends.names()
