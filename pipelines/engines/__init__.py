"""Engines: the workbench as an OpenAI-compatible server (``openai_server``) and remote OpenAI-compatible
backends: the registry (``remote``), streamed generation for Generate/Compare (``remote_stream``), task prompts of
Summarize/Extract and their CSV batches (``remote_task``, several requests in flight through ``remote_batch``), and
the refusal of views that need a model's internals (``internals``). No Gradio, no torch at import time."""

from __future__ import annotations

from pipelines.engines.config import EnginesConfig
from pipelines.engines.remote import REMOTE_PREFIX, Backends, RemoteEndpoint, backends_of, is_remote, use_backends

__all__ = ["REMOTE_PREFIX", "Backends", "EnginesConfig", "RemoteEndpoint", "backends_of", "is_remote", "use_backends"]
