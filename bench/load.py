"""Load test: 16 concurrent clients call /classify and generate for a bounded time (issue #20).

In one run, against one app:

1. one client alone generates for a while: generated tokens/s of a single user;
2. 16 clients for ``seconds`` (even ones classify, odd ones generate, as before): requests/s, p50/p95 latency with
   the numbers measured before batched decoding printed beside, errors, queue-full answers, the app's peak RSS and
   the aggregate generated tokens/s;
3. ``bench/load_memory.py``'s memory report: peak RSS with 16 clients, half of them on the Attention tab at 512
   tokens, and the memory each idle session retains.

The last line is ``ratio N (aggregate generated tokens/s, 16 clients vs 1)`` (goal >= 3 on a 2-core CPU).
Generation goes through ``/generate_details`` (which reports the tokens generated) with the transformers engine in
float32, the engine whose decoding steps are batched across requests.

Run: .venv/bin/python bench/load.py [seconds=60] [clients=16] [solo_seconds=20]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradio_client import Client  # noqa: E402

from bench.load_memory import PeakSampler, format_memory_report, memory_report  # noqa: E402
from pipelines.config import AppConfig  # noqa: E402
from tests.app_server import running_app  # noqa: E402

MODEL = "smollm2-135m-instruct"
CLASSIFY = ("The striker scored and the team won the match.", "embeddings", "minilm-l6", "sports, cooking, finance", "")
# transformers in float32: the engine whose decoding steps are batched (``auto`` answers SmolLM2 with llama.cpp on a
# CPU, one request at a time)
GENERATE = {"prompt": "Say hello in one short sentence.",
            "settings": {"max_new_tokens": 16, "engine": "transformers", "precision": "float32"}}
BEFORE = {"p50": 12.0, "p95": 20.5}  # seconds, bench/load.py before batched decoding (16 clients, 2 cores)


class Generator:
    """One client: its generation calls return the number of tokens generated."""

    def __init__(self, url: str) -> None:
        self.client = Client(url, verbose=False)

    def __call__(self) -> int:
        out = self.client.predict(GENERATE["prompt"], MODEL, GENERATE["settings"], api_name="/generate_details")
        return int(out["stats"]["new_tokens"])

    def classify(self) -> None:
        self.client.predict(*CLASSIFY, api_name="/classify")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Tally:
    """Latencies, generated tokens and errors of a phase, shared by its client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.generate_latencies: list[float] = []
        self.tokens = 0
        self.errors: list[str] = []
        self.queue_full = 0

    def call(self, fn: Callable[[], Any], generating: bool) -> None:
        started = time.monotonic()
        try:
            tokens = fn()
        except Exception as exc:  # noqa: BLE001 - counted and reported
            self.failed(exc)
            return
        elapsed = time.monotonic() - started
        with self.lock:
            self.latencies.append(elapsed)
            if generating:
                self.generate_latencies.append(elapsed)
                self.tokens += int(tokens or 0)

    def failed(self, exc: Exception) -> None:
        with self.lock:
            if "queue is full" in str(exc).lower() or "429" in str(exc):
                self.queue_full += 1
            else:
                self.errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")


def connect(url: str, tally: Tally, tries: int = 3) -> Generator | None:
    """A client for ``url``; a connection that times out (a loaded machine) is tried again, then counted."""
    for attempt in range(tries):
        try:
            return Generator(url)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            if attempt == tries - 1:
                tally.failed(exc)
    return None


def run_phase(url: str, clients: int, seconds: float, mixed: bool) -> tuple[Tally, float]:
    """``clients`` threads call until ``seconds`` have passed; with ``mixed`` even clients classify."""
    tally = Tally()
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        gen = connect(url, tally)
        i = index
        while gen is not None and time.monotonic() < deadline:
            classify = mixed and i % 2 == 0
            tally.call(gen.classify if classify else gen, generating=not classify)
            i += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, time.monotonic() - started


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    solo_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as data, running_app(Path(data), AppConfig.from_env().cache_dir) as server:
        url, pid = server["url"], server["proc"].pid
        warm = Generator(url)
        warm.classify()
        warm()  # both models loaded before anything is timed
        solo, solo_elapsed = run_phase(url, 1, solo_seconds, mixed=False)
        with PeakSampler(pid, interval=0.5) as sampler:
            loaded, elapsed = run_phase(url, clients, seconds, mixed=True)
        memory = memory_report(url, pid, clients=clients)
        alive = server["proc"].poll() is None
    load_after = os.getloadavg()
    solo_rate = solo.tokens / solo_elapsed if solo_elapsed else 0.0
    rate = loaded.tokens / elapsed if elapsed else 0.0
    p50, p95 = percentile(loaded.latencies, 0.5), percentile(loaded.latencies, 0.95)
    single = statistics.median(solo.latencies) if solo.latencies else float("nan")
    print(f"load average (1/5/15 min) before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, "
          f"after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}; generation: {GENERATE['settings']}")
    print(f"1 client alone for {solo_seconds:.0f} s: {len(solo.latencies)} generations, {solo.tokens} tokens, "
          f"{solo_rate:.2f} generated tokens/s, median {single:.2f}s, {len(solo.errors)} errors")
    print(f"{clients} clients for {seconds:.0f} s: {len(loaded.latencies)} answered, {loaded.queue_full} told the "
          f"queue is full, {len(loaded.errors)} errors (goal 0), app alive: {alive}")
    print(f"throughput {len(loaded.latencies) / elapsed:.2f} req/s; latency p50 {p50:.2f}s (before: "
          f"{BEFORE['p50']:.1f}s) p95 {p95:.2f}s (before: {BEFORE['p95']:.1f}s); generation p50 "
          f"{percentile(loaded.generate_latencies, 0.5):.2f}s p95 {percentile(loaded.generate_latencies, 0.95):.2f}s")
    print(f"aggregate generated tokens/s: {rate:.2f} with {clients} clients ({loaded.tokens} tokens), "
          f"{solo_rate:.2f} with 1 client")
    print(f"peak app memory (RSS) {sampler.peak / 2**20:.0f} MB during the {clients}-client run")
    for err in (solo.errors + loaded.errors)[:5]:
        print("  error:", err)
    for line in format_memory_report(memory):
        print(line)
    for sample in memory["error_samples"]:
        print("  memory error:", sample)
    print(f"ratio {rate / solo_rate if solo_rate else float('nan'):.2f} (aggregate generated tokens/s, "
          f"{clients} clients vs 1)")


if __name__ == "__main__":
    main()
