"""Engines: the workbench as an OpenAI-compatible server (``openai_server``) and remote OpenAI-compatible
backends used by the Generate tab (``remote``, ``remote_stream``). No Gradio, no torch at import time."""

from __future__ import annotations

from pipelines.engines.config import EnginesConfig
from pipelines.engines.remote import REMOTE_PREFIX, Backends, RemoteEndpoint, backends_of, is_remote, use_backends

__all__ = ["REMOTE_PREFIX", "Backends", "EnginesConfig", "RemoteEndpoint", "backends_of", "is_remote", "use_backends"]
