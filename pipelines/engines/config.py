"""Settings of the OpenAI-compatible server and of remote backends (from :class:`AppConfig`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.config import AppConfig


@dataclass(frozen=True)
class EnginesConfig:
    """``LMW_API_KEY``: bearer key the ``/v1`` server requires (empty: open); ``LMW_BACKENDS``: remote
    endpoints as ``name=url[|key];name2=url2``; timeouts in seconds; retries of a 429 answer.

    ``max_in_flight`` (``LMW_REMOTE_CONCURRENCY``, default 4): requests a CSV batch keeps in flight on a remote
    endpoint; each is retried ``retries`` times with exponential back-off (``backoff_s`` doubling) on 429, 5xx
    and a reset connection, and gives up after ``read_timeout_s`` without an answer. ``remote_context``: the
    context (in tokens) task prompts assume for a remote model, which the OpenAI API does not report."""

    api_key: str = field(default="", repr=False)
    backends: str = field(default="", repr=False)  # may hold keys: never shown
    default_max_tokens: int = 256
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    probe_timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    max_retry_after_s: float = 5.0
    max_in_flight: int = field(default_factory=lambda: in_flight_from_env())
    remote_context: int = 2048  # tokens assumed for a remote model's context (servers do not report it)

    @classmethod
    def of(cls, config: AppConfig) -> EnginesConfig:
        """The engine settings held by the app's configuration (every environment variable is read there)."""
        return cls(api_key=config.api_key, backends=config.backends,
                   connect_timeout_s=config.remote_connect_timeout_s, read_timeout_s=config.remote_read_timeout_s,
                   max_in_flight=config.remote_concurrency)

    @classmethod
    def from_env(cls) -> EnginesConfig:
        """From ``AppConfig.from_env()`` (``LMW_API_KEY``, ``LMW_BACKENDS``, ``LMW_REMOTE_*_TIMEOUT``)."""
        from pipelines.config import AppConfig

        return cls.of(AppConfig.from_env())


MAX_IN_FLIGHT_CAP = 64


def in_flight_from_env(default: int = 4) -> int:
    """``LMW_REMOTE_CONCURRENCY`` (1..64), or ``default`` when unset or not a whole number."""
    value = os.environ.get("LMW_REMOTE_CONCURRENCY", "").strip()
    return max(1, min(MAX_IN_FLIGHT_CAP, int(value))) if value.isdigit() else default
