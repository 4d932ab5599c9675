"""Is the Hugging Face Hub reachable? A fast, cached answer so offline loads fail at once.

With ``HF_HUB_OFFLINE`` unset and no network, huggingface_hub retries an unknown id for ~23 s before failing.
One TCP connect (2 s timeout, DNS included) decides instead; when it fails, hub loads pass
``local_files_only=True`` and the clear offline message comes at once.
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
_hub_lock = threading.Lock()
_hub_state: dict[str, float | bool] = {"checked": float("-inf"), "reachable": False}


def _hub_address() -> tuple[str, int]:
    """Host and port a Hub request first connects to: the HTTPS proxy if one applies, else the Hub endpoint."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host = url.hostname or host
    return host, url.port or (443 if url.scheme == "https" else 80)


def _probe(host: str, port: int, timeout: float) -> bool:
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


def hub_reachable() -> bool:
    """Whether the Hugging Face Hub accepts connections (False at once under HF_HUB_OFFLINE); cached ~60 s.

    When it is not, hub loads use ``local_files_only=True`` so the offline message comes at once instead of
    after huggingface_hub's ~23 s of retries.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    with _hub_lock:
        if time.monotonic() - float(_hub_state["checked"]) < HUB_CHECK_SECONDS:
            return bool(_hub_state["reachable"])
        reachable = _probe(*_hub_address(), HUB_CONNECT_TIMEOUT)
        if not reachable:
            log.info("The Hugging Face Hub is unreachable; hub models load from the local cache only")
        _hub_state.update(checked=time.monotonic(), reachable=reachable)
        return reachable


def reset_hub_check() -> None:
    """Forget the cached reachability answer (tests, or after the network changes)."""
    with _hub_lock:
        _hub_state.update(checked=float("-inf"), reachable=False)


def hub_options(ref: ModelRef) -> dict[str, Any]:
    """Extra ``from_pretrained`` arguments for ``ref``: local-cache-only for a hub id while the Hub is down."""
    return {"local_files_only": True} if ref.source == "hub" and not hub_reachable() else {}
