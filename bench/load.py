"""Load test: 16 concurrent gradio_client clients call /classify and /generate for a bounded time.

Prints requests/s, p50/p95 latency, errors, queue-full answers and the app process's peak memory, plus the
ratio of loaded to unloaded (one client, one request at a time) latency measured in the same run.

Run: .venv/bin/python bench/load.py [seconds=60] [clients=16]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402
from gradio_client import Client  # noqa: E402

from pipelines.config import AppConfig  # noqa: E402
from tests.app_server import running_app  # noqa: E402

CLASSIFY = ("The striker scored and the team won the match.", "embeddings", "minilm-l6", "sports, cooking, finance", "")
GENERATE = {"prompt": "Say hello in one short sentence.", "settings": {"max_new_tokens": 16}}


def one_call(client: Client, i: int) -> str:
    if i % 2 == 0:
        return client.predict(*CLASSIFY, api_name="/classify")[0]
    return client.predict(GENERATE["prompt"], "smollm2-135m-instruct", GENERATE["settings"], api_name="/generate")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    with tempfile.TemporaryDirectory() as data, running_app(Path(data), AppConfig.from_env().cache_dir) as server:
        proc = psutil.Process(server["proc"].pid)
        warm = Client(server["url"], verbose=False)
        baseline = []
        for i in range(4):  # warm both models, then time single requests
            started = time.monotonic()
            one_call(warm, i)
            baseline.append(time.monotonic() - started)
        latencies: list[float] = []
        errors: list[str] = []
        queue_full = 0
        peak_rss = proc.memory_info().rss
        lock = threading.Lock()
        deadline = time.monotonic() + seconds

        def worker(index: int) -> None:
            nonlocal queue_full
            client = Client(server["url"], verbose=False)
            i = index
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    one_call(client, i)
                    with lock:
                        latencies.append(time.monotonic() - started)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    with lock:
                        if "queue is full" in str(exc).lower():
                            queue_full += 1
                        else:
                            errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
                i += 1

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            peak_rss = max(peak_rss, proc.memory_info().rss)
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        alive = server["proc"].poll() is None
    single = statistics.median(baseline[2:])
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    print(f"{clients} clients for {seconds:.0f} s: {len(latencies)} answered, {queue_full} told the queue is full, "
          f"{len(errors)} errors, app alive: {alive}")
    print(f"throughput {len(latencies) / elapsed:.2f} req/s; latency p50 {p50:.2f}s p95 {p95:.2f}s; "
          f"single-request median {single:.2f}s; p50 ratio loaded/unloaded {p50 / single:.1f}x")
    print(f"peak app memory (RSS) {peak_rss / 2**20:.0f} MB")
    for err in errors[:5]:
        print("  error:", err)


if __name__ == "__main__":
    main()
