"""Memory under load: peak app RSS with many clients (half of them on the Attention tab at 512 tokens) and the
memory each idle session keeps afterwards (issue #20, "Memory per user"; goals: <= 3 GB and <= 25 MB).

``memory_report(url, app_pid)`` drives the clients against an app that is already running (``bench/load.py`` calls
it); run alone, this file starts one (tests/app_server.py) and prints the report:

    .venv/bin/python bench/load_memory.py [clients=16] [tokens=512]
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

GOAL_PEAK_MB = 3072
HTTPX = {"timeout": 600.0}  # gradio_client's default 5 s is too short for 16 clients joining a busy 2-core machine
GOAL_RETAINED_MB = 25
MB = 2**20
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank while the children watch it. "
CLASSIFY = ("The striker scored and the team won the match.", "embeddings", "minilm-l6", "sports, cooking, finance",
            "This text is about {}.")


def app_rss(pid: int) -> int:
    """Resident bytes of the app process and its children (training children, llama.cpp helpers)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for one in procs:
        try:
            total += one.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


class PeakSampler:
    """Samples the app's RSS every ``interval`` seconds in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.peak = app_rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, app_rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, app_rss(self.pid))


def attention_call(client: Any, model: str, tokens: int) -> None:
    """The Attention tab's "Show attention" on a text longer than ``tokens`` tokens, cut to ``tokens``."""
    words = SENTENCE * max(1, tokens // 16 + 8)
    client.predict(model, words, "", tokens, 0, 0, api_name="/attention_views")


def classify_call(client: Any) -> None:
    client.predict(*CLASSIFY, api_name="/classify")


def _drive(url: str, clients: int, model: str, tokens: int) -> tuple[list[Any], list[str]]:
    """Every client makes its call at the same time (even: attention, odd: classify); its Client stays open."""
    from gradio_client import Client

    opened: list[Any] = [None] * clients
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def worker(index: int) -> None:
        try:
            client = Client(url, verbose=False, httpx_kwargs=HTTPX)
            opened[index] = client
            barrier.wait(120)
            attention_call(client, model, tokens) if index % 2 == 0 else classify_call(client)
        except Exception as exc:  # noqa: BLE001 - counted and reported, the bench goes on
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    return [c for c in opened if c is not None], errors


def memory_report(url: str, app_pid: int, clients: int = 16, tokens: int = 512,
                  model: str = "smollm2-135m-instruct", idle_seconds: float = 5.0) -> dict:
    """Drive ``clients`` sessions against the app at ``url`` and measure the app process ``app_pid``.

    One warm-up client loads the models first (so the baseline holds them); then every client calls at once,
    half of them the Attention tab at ``tokens`` tokens of ``model``, half Classify. Returns peak RSS during the
    calls, the baseline, and the RSS each session still holds after ``idle_seconds`` of idleness (its browser
    session still open: nothing has ended it), with the issue's goals and whether both are met.
    """
    from gradio_client import Client

    warm = Client(url, verbose=False, httpx_kwargs=HTTPX)
    attention_call(warm, model, tokens)
    classify_call(warm)
    time.sleep(idle_seconds)
    baseline = app_rss(app_pid)
    started = time.monotonic()
    with PeakSampler(app_pid) as sampler:
        opened, errors = _drive(url, clients, model, tokens)
    seconds = time.monotonic() - started
    time.sleep(idle_seconds)
    idle = app_rss(app_pid)
    retained = max(0.0, (idle - baseline) / MB / max(1, clients))
    peak_mb = sampler.peak / MB
    report = {
        "clients": clients, "attention_clients": (clients + 1) // 2, "tokens": tokens, "model": model,
        "errors": len(errors), "error_samples": errors[:3], "seconds": round(seconds, 1),
        "baseline_rss_mb": round(baseline / MB, 1), "peak_rss_mb": round(peak_mb, 1),
        "idle_rss_mb": round(idle / MB, 1), "retained_mb_per_idle_session": round(retained, 1),
        "goal_peak_rss_mb": GOAL_PEAK_MB, "goal_retained_mb": GOAL_RETAINED_MB, "open_sessions": len(opened),
    }
    report["ok"] = peak_mb <= GOAL_PEAK_MB and retained <= GOAL_RETAINED_MB and not errors
    return report


def format_memory_report(report: dict) -> list[str]:
    """Printable lines of :func:`memory_report`'s dict."""
    return [
        f"memory: {report['clients']} clients ({report['attention_clients']} on Attention at {report['tokens']} "
        f"tokens of {report['model']}), errors {report['errors']}, {report['seconds']} s",
        f"peak app RSS {report['peak_rss_mb']:.0f} MB (goal <= {report['goal_peak_rss_mb']} MB; "
        f"baseline {report['baseline_rss_mb']:.0f} MB)",
        f"retained per idle session {report['retained_mb_per_idle_session']:.1f} MB "
        f"(goal <= {report['goal_retained_mb']} MB; idle RSS {report['idle_rss_mb']:.0f} MB)",
        f"memory goals {'met' if report['ok'] else 'NOT met'}",
    ]


def main() -> None:
    import tempfile

    from pipelines.config import AppConfig
    from tests.app_server import running_app

    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    with tempfile.TemporaryDirectory() as data, running_app(Path(data), AppConfig.from_env().cache_dir) as server:
        report = memory_report(server["url"], server["proc"].pid, clients, tokens)
    for line in format_memory_report(report):
        print(line)
    for sample in report["error_samples"]:
        print("error:", sample)


if __name__ == "__main__":
    main()
