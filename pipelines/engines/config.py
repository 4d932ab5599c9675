"""Settings of the OpenAI-compatible server and of remote backends (from :class:`AppConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.config import AppConfig


@dataclass(frozen=True)
class EnginesConfig:
    """``LMW_API_KEY``: bearer key the ``/v1`` server requires (empty: open); ``LMW_BACKENDS``: remote
    endpoints as ``name=url[|key];name2=url2``; timeouts in seconds; retries of a 429 answer."""

    api_key: str = field(default="", repr=False)
    backends: str = field(default="", repr=False)  # may hold keys: never shown
    default_max_tokens: int = 256
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    probe_timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    max_retry_after_s: float = 5.0

    @classmethod
    def of(cls, config: AppConfig) -> EnginesConfig:
        """The engine settings held by the app's configuration (every environment variable is read there)."""
        return cls(api_key=config.api_key, backends=config.backends,
                   connect_timeout_s=config.remote_connect_timeout_s, read_timeout_s=config.remote_read_timeout_s)

    @classmethod
    def from_env(cls) -> EnginesConfig:
        """From ``AppConfig.from_env()`` (``LMW_API_KEY``, ``LMW_BACKENDS``, ``LMW_REMOTE_*_TIMEOUT``)."""
        from pipelines.config import AppConfig

        return cls.of(AppConfig.from_env())
