"""Is the Hugging Face Hub reachable? A fast, cached answer so offline loads fail at once.

With ``HF_HUB_OFFLINE`` unset and no network, huggingface_hub retries an unknown id for ~23 s before failing.
One TCP connect (2 s timeout, DNS included) decides instead; when it fails, hub loads pass
``local_files_only=True`` and the clear offline message comes at once. The cached answer lives on a
:class:`HubCheck` owned by the model manager (``ctx.manager.hub``), not in module globals.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import urlparse

from pipelines.models.refs import ModelRef

log = logging.getLogger(__name__)

HUB_CHECK_SECONDS = 60.0  # how long a reachability answer is reused
HUB_CONNECT_TIMEOUT = 2.0


def hub_address() -> tuple[str, int]:
    """Host and port a Hub request first connects to: the HTTPS proxy if one applies, else the Hub endpoint."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host = url.hostname or host
    return host, url.port or (443 if url.scheme == "https" else 80)


def probe(host: str, port: int, timeout: float) -> bool:
    """TCP connect in a daemon thread so a slow DNS lookup is bounded by ``timeout`` too."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, name="hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


class HubCheck:
    """The cached reachability answer (one per model manager); thread-safe."""

    def __init__(self, ttl: float = HUB_CHECK_SECONDS, timeout: float = HUB_CONNECT_TIMEOUT) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self.checked = float("-inf")
        self.answer = False
        self._lock = threading.Lock()

    def reachable(self) -> bool:
        """Whether the Hub accepts connections (False at once under HF_HUB_OFFLINE); reused for ``ttl`` s."""
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return False
        with self._lock:
            if time.monotonic() - self.checked < self.ttl:
                return self.answer
            answer = self.probe(*hub_address(), self.timeout)
            if not answer:
                log.info("The Hugging Face Hub is unreachable; hub models load from the local cache only")
            self.checked, self.answer = time.monotonic(), answer
            return answer

    @staticmethod
    def probe(host: str, port: int, timeout: float) -> bool:
        return probe(host, port, timeout)

    def reset(self) -> None:
        """Forget the cached answer (tests, or after the network changes)."""
        with self._lock:
            self.checked, self.answer = float("-inf"), False

    def options(self, ref: ModelRef) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments for ``ref``: local-cache-only for a hub id while the Hub is down."""
        return {"local_files_only": True} if ref.source == "hub" and not self.reachable() else {}


def hub_reachable(check: HubCheck | None = None) -> bool:
    """Compatibility helper: ``check.reachable()``; pass ``ctx.manager.hub`` to reuse the cached answer
    (without it every call probes afresh, except under HF_HUB_OFFLINE)."""
    return (check or HubCheck()).reachable()
