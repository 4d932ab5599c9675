"""Start the real app in a subprocess on a free port, for API and browser tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, deadline_s: float = 90.0, proc: subprocess.Popen | None = None) -> float:
    """Poll ``url`` until it answers 200; return the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"The app exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {deadline_s} s")


@contextlib.contextmanager
def running_app(data_dir: Path, cache_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[dict]:
    """Run ``python app.py``; yields ``{"url", "startup_s", "proc", "log"}`` and stops it afterwards."""
    port = free_port()
    log_path = data_dir / "app.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "LMW_DATA_DIR": str(data_dir),
        "LMW_CACHE_DIR": str(cache_dir),
        # training children of the served app take at least 50 ms a step (test hook), so a Stop or a second user
        # always lands mid-run, however fast a tiny model trains on an idle machine
        "LMW_TEST_STEP_SECONDS": "0.05",
        **(extra_env or {}),
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            startup = wait_for_http(url, proc=proc)
            yield {"url": url, "startup_s": startup, "proc": proc, "log": log_path}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
