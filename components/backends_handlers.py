"""Handlers of the Backends section (remote OpenAI-compatible endpoints): plain values in, plain values out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.context import AppContext
from pipelines.engines.remote import Backends, RemoteEndpoint, backends_of
from pipelines.messages import render

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
        self.backends.probe(endpoint.name)
        return self.table(lang)

    def remove(self, name: str, lang: str = "en") -> EndpointTable:
        self.backends.remove((name or "").strip())
        return self.table(lang)

    def check(self, lang: str = "en") -> EndpointTable:
        """Ask every endpoint for its models (reachability and latency)."""
        self.backends.probe_all()
        return self.table(lang)

    def names(self) -> list[str]:
        return self.backends.names()
