"""Generation speed: the app's path (fp32 and auto) against transformers.pipeline("text-generation") in fp32.

Same model (embedded SmolLM2-135M-Instruct), a ~100-token prompt, greedy, 128 new tokens. Runs are
interleaved (pipeline, app fp32, app auto, ...) for several rounds and the medians are compared, so a
change in machine load hits every variant alike. Prints decode tokens/s, time to first token (TTFT),
the ratios to the pipeline, and for auto the share of greedy tokens equal to fp32's and the perplexity
change on the held-out text.

    .venv/bin/python bench/generate.py [--rounds 3] [--new-tokens 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers.generation.streamers import BaseStreamer  # noqa: E402

from pipelines.config import AppConfig  # noqa: E402
from pipelines.context import AppContext  # noqa: E402
from pipelines.generation import GenerationService, GenerationSettings  # noqa: E402

MODEL = "smollm2-135m-instruct"
PROMPT = (
    "The small town of Alder Creek sat at the edge of a wide pine forest, where the river bent twice before it "
    "reached the sea. Every spring the townspeople held a market on the old stone bridge, selling honey, wool, "
    "and carved wooden birds. This year, a stranger arrived on the morning of the market with a cart full of "
    "clocks that all showed different times. The children followed him across the bridge, and the baker asked "
    "him where he had come from. He smiled and said"
)


class TimingStreamer(BaseStreamer):
    """Records when each new token arrives (the first put() carries the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.ids: list[int] = []
        self._prompt = True

    def put(self, value: torch.Tensor) -> None:
        if self._prompt:
            self._prompt = False
            return
        self.times.append(time.perf_counter())
        self.ids.append(int(value.reshape(-1)[0]))

    def end(self) -> None:
        pass


def run_pipeline(pipe, new_tokens: int) -> dict:
    streamer = TimingStreamer()
    started = time.perf_counter()
    pipe(PROMPT, max_new_tokens=new_tokens, do_sample=False, return_full_text=False, streamer=streamer)
    return summarise(streamer.ids, started, streamer.times)


def run_app(service: GenerationService, precision: str, new_tokens: int) -> dict:
    """The app's path end to end (model lookup, prompt encoding, streaming); TTFT from the call to the first
    token reaching the caller."""
    settings = GenerationSettings(max_new_tokens=new_tokens, mode="completion", precision=precision,
                                  do_sample=False)  # greedy (completion's default too), comparable with the pipeline
    started = time.perf_counter()
    first, result = None, None
    for snapshot in service.stream(MODEL, PROMPT, settings):
        first, result = first or time.perf_counter(), snapshot
    return {"ids": [t.id for t in result.tokens], "ttft": first - started, "tps": result.decode_tokens_per_s or 0.0,
            "n": len(result.tokens), "precision": result.precision}


def in_fresh_thread(fn):
    """Run ``fn`` in a new thread and return its result (for reference).

    On this 2-core machine a thread that is new to torch gets a new OpenMP team that competes with the idle,
    spinning team of earlier threads: generate() there ran ~16 tok/s against ~27 tok/s in the main thread.
    That is why the app runs all generation in one long-lived compute thread.
    """
    box: list = []
    worker = threading.Thread(target=lambda: box.append(fn()))
    worker.start()
    worker.join()
    return box[0]


def forced_agreement(model, prompt_ids: list[int], fp32_ids: list[int]) -> float:
    """Share of positions where ``model``'s greedy next token equals fp32's, fed fp32's own continuation
    (teacher forcing: one early divergence does not make every later token differ)."""
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
        hits = 0
        for i, token in enumerate(fp32_ids):
            hits += int(out.logits[0, -1].argmax()) == token
            if i + 1 < len(fp32_ids):
                out = model(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
    return hits / max(len(fp32_ids), 1)


def one_thread(fn):
    """Run ``fn`` in the main thread with one torch thread (a reference: the app tunes its thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def summarise(ids: list[int], started: float, times: list[float]) -> dict:
    n = len(times)
    tps = (n - 1) / (times[-1] - times[0]) if n > 1 else 0.0
    return {"ids": ids, "ttft": times[0] - started if times else float("nan"), "tps": tps, "n": n}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="lmw-bench-gen-"))
    env = AppConfig.from_env()
    ctx = AppContext.create(AppConfig(data_dir=data, cache_dir=env.cache_dir, gen_threads=env.gen_threads))
    service = GenerationService(ctx)
    loaded = ctx.manager.load(MODEL, "causal-lm", dtype="float32")
    pipe = transformers.pipeline("text-generation", model=loaded.model, tokenizer=loaded.tokenizer)
    prompt_tokens = len(loaded.tokenizer(PROMPT).input_ids)
    print(f"model {MODEL}, prompt {prompt_tokens} tokens, greedy, {args.new_tokens} new tokens, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")

    started = time.perf_counter()
    choice = in_fresh_thread(lambda: service.precision.choose(MODEL))
    took = time.perf_counter() - started
    print(f"auto decision: {choice.precision} ({choice.reason}); measured once in {took:.1f} s")
    for name, m in choice.measurements.items():
        print(f"  {name:12s} perplexity {m['ppl']:8.3f}   decode step {1000 * m['step_s']:6.1f} ms")

    # Baseline: the pipeline called from the main thread, as a plain script does. The app runs every generation
    # in one long-lived compute thread (ctx.compute, pipelines/generation/threads.py ComputeThread).
    variants = {"pipeline fp32": lambda: run_pipeline(pipe, args.new_tokens)}
    variants["pipeline fp32, fresh thread"] = lambda: in_fresh_thread(lambda: run_pipeline(pipe, args.new_tokens))
    variants["pipeline fp32, 1 thread"] = lambda: one_thread(lambda: run_pipeline(pipe, args.new_tokens))
    variants["app fp32"] = lambda: run_app(service, "float32", args.new_tokens)
    variants["app auto"] = lambda: run_app(service, "auto", args.new_tokens)
    for extra in ("bfloat16", "int8-weight"):
        if extra != choice.precision:
            variants[f"app {extra}"] = lambda p=extra: run_app(service, p, args.new_tokens)
    for fn in variants.values():  # warm-up: loads, first-call allocations
        fn()
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            runs[name].append(fn())

    base = runs["pipeline fp32"]
    base_tps, base_ttft, base_ids = median(base, "tps"), median(base, "ttft"), base[-1]["ids"]
    print(f"\n{'variant':28s} {'tokens/s':>9s} {'x pipeline':>10s} {'TTFT s':>8s} {'x pipeline':>10s} "
          f"{'same tokens, free-run':>22s}")
    for name, rs in runs.items():
        tps, ttft, ids = median(rs, "tps"), median(rs, "ttft"), rs[-1]["ids"]
        same = sum(a == b for a, b in zip(ids, base_ids, strict=False)) / max(len(base_ids), 1)
        print(f"{name:28s} {tps:9.2f} {tps / base_tps:9.2f}x {ttft:8.3f} {base_ttft / ttft:9.2f}x {same:21.0%}")
    tuner = ctx.compute.tuner
    print(f"\napp compute thread: {tuner.best} torch thread(s) chosen from measured decoding steps "
          f"(candidates {tuner.counts})")
    identical = runs["app fp32"][-1]["ids"] == base_ids
    fp32_ppl = choice.measurements["float32"]["ppl"]
    auto_ppl = choice.measurements[choice.precision]["ppl"]
    prompt_ids = loaded.tokenizer(PROMPT).input_ids
    for precision in ("auto", "bfloat16", "int8-weight"):
        engine = service.engine(MODEL, precision)
        share = ctx.compute.run(lambda m=engine.model: forced_agreement(m, prompt_ids, base_ids))
        print(f"app {precision} ({engine.precision.split(',')[0]}): greedy token equal to fp32's at {share:.0%} of the "
              f"{len(base_ids)} positions of fp32's answer (teacher-forced)")
    print(f"app fp32 greedy output identical to the pipeline's: {identical}")
    print(f"app auto ({choice.precision}) perplexity change on the held-out text: {auto_ppl / fp32_ppl - 1:+.2%}")
    print("Note: other processes share this CPU; ratios come from interleaved runs in one process, absolute "
          "numbers move with the machine's load.")


if __name__ == "__main__":
    main()
