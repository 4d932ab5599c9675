"""Generation speed: the app's path (auto, which is llama.cpp for the embedded GGUF model on a CPU; and the
transformers engine in fp32 and auto precision) against transformers.pipeline("text-generation") in fp32 and
against plain ``llama_cpp.Llama`` used directly.

Same model (embedded SmolLM2-135M-Instruct), a ~100-token prompt, greedy, 128 new tokens. Runs are
interleaved (pipeline, app fp32, app auto, direct llama.cpp, ...) for several rounds and the medians are compared,
so a change in machine load hits every variant alike. Prints decode tokens/s, time to first token (TTFT), the
ratios to the pipeline, the cost of the token view's probabilities on llama.cpp (the same decoding loop without
them), and ends with ``ratio N``: auto's decode speed over the pipeline's. Every app llama.cpp run starts with an
empty KV cache (the app reuses a cached prompt prefix; here each run pays its whole prompt).

    .venv/bin/python bench/generate.py [--rounds 3] [--new-tokens 128] [--all]
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

try:
    from llama_cpp import Llama
except ImportError:  # the llama.cpp rows need llama-cpp-python (requirements-engine.txt)
    Llama = None

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


def run_app(service: GenerationService, precision: str, new_tokens: int, engine: str = "auto") -> dict:
    """The app's path end to end (engine choice, model lookup, prompt encoding, streaming); TTFT from the call to
    the first token reaching the caller. A llama.cpp model's KV cache is emptied first (no prompt reuse)."""
    settings = GenerationSettings(max_new_tokens=new_tokens, mode="completion", precision=precision, engine=engine,
                                  do_sample=False)  # greedy (completion's default too), comparable with the pipeline
    forget_prompt(service, settings)
    started = time.perf_counter()
    first, result = None, None
    for snapshot in service.stream(MODEL, PROMPT, settings):
        first, result = first or time.perf_counter(), snapshot
    return {"ids": [t.id for t in result.tokens], "ttft": first - started, "tps": result.decode_tokens_per_s or 0.0,
            "n": len(result.tokens), "precision": result.precision, "engine": result.engine}


def forget_prompt(service: GenerationService, settings: GenerationSettings) -> None:
    """Empty the KV cache of the llama.cpp model these settings run on (each run pays its whole prompt)."""
    engine = service.engine(MODEL, settings.precision, engine=settings.engine)
    if engine.name == "llama.cpp":
        engine.model.reset()


def direct_llama(threads: int | None) -> Llama:
    """Plain ``llama_cpp.Llama`` on the same GGUF file as the app (the embedded Q4_1 re-encoded as Q8_0,
    ``pipelines.models.gguf_repack``; ``threads=None``: its own default thread count); the prompt is evaluated with
    llama.cpp's default (every core), as the app does."""
    from pipelines.config import AppConfig
    from pipelines.models.embedded import EMBEDDED, source_path
    from pipelines.models.gguf_repack import repacked

    kwargs = {} if threads is None else {"n_threads": threads}
    path = repacked(source_path(EMBEDDED[MODEL]), AppConfig.from_env().cache_dir)
    return Llama(str(path), n_ctx=2048, verbose=False, **kwargs)


def run_direct(llm: Llama, new_tokens: int) -> dict:
    """``Llama.generate`` greedy from the prompt's tokens (the tokenizer call counted in the TTFT)."""
    started = time.perf_counter()
    tokens = llm.tokenize(PROMPT.encode(), add_bos=False)
    llm.reset()
    ids, times = [], []
    for token in llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
        ids.append(int(token))
        times.append(time.perf_counter())
        if len(ids) >= new_tokens or llm.token_eos() == token:
            break
    return summarise(ids, started, times)


def run_llamacpp_loop(service: GenerationService, new_tokens: int, probabilities: bool) -> dict:
    """The app's llama.cpp decoding loop in its compute thread, with or without the token view's probabilities
    (softmax and top-5 per token); prompt encoded beforehand, so this isolates the probabilities' cost."""
    from pipelines.generation.llamacpp import decode
    from pipelines.generation.llamacpp_sampling import Pick, Sampler
    from pipelines.generation.llamacpp_threads import tuner_of

    engine = service.engine(MODEL)
    ids = engine.encode(PROMPT, chat=False)
    settings = GenerationSettings(mode="completion", do_sample=False).for_mode("completion")
    sampler = Sampler(settings, 0, ids) if probabilities else (
        lambda logits: Pick(int(logits.argmax()), float("nan"), [], []))
    events: list = []

    def work() -> float:
        tuner = tuner_of(engine.model, engine.compute.threads)
        tuner.apply()
        engine.model.reset()
        started = time.perf_counter()
        decode(engine.model, ids, sampler, new_tokens, events.append, lambda _t: False, tuner.tick)
        return started

    started = engine.compute.run(work)
    return summarise([e.token_id for e in events], started, [e.at for e in events])


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


def variants_of(service: GenerationService, pipe, args: argparse.Namespace, auto_precision: str) -> dict:
    """The variants to time, by row name (``app auto`` is the app's default: llama.cpp when it can)."""
    n = args.new_tokens
    variants = {"pipeline fp32": lambda: run_pipeline(pipe, n)}
    variants["pipeline fp32, 1 thread"] = lambda: one_thread(lambda: run_pipeline(pipe, n))
    variants["app fp32"] = lambda: run_app(service, "float32", n, "transformers")
    variants["app transformers auto"] = lambda: run_app(service, "auto", n, "transformers")
    variants["app auto"] = lambda: run_app(service, "auto", n)
    if Llama is not None:
        default, everything = direct_llama(None), direct_llama(os.cpu_count() or 1)
        variants[f"llama.cpp direct, {default.n_threads} thr"] = lambda: run_direct(default, n)
        if everything.n_threads != default.n_threads:
            variants[f"llama.cpp direct, {everything.n_threads} thr"] = lambda: run_direct(everything, n)
        variants["app llama.cpp loop, no probs"] = lambda: run_llamacpp_loop(service, n, False)
        variants["app llama.cpp loop, probs"] = lambda: run_llamacpp_loop(service, n, True)
    if args.all:
        variants["pipeline fp32, fresh thread"] = lambda: in_fresh_thread(lambda: run_pipeline(pipe, n))
        for extra in ("bfloat16", "int8-weight"):
            if extra != auto_precision:
                variants[f"app {extra}"] = lambda p=extra: run_app(service, p, n, "transformers")
    return variants


def report_goals(runs: dict[str, list[dict]]) -> None:
    """The issue's goals: auto >= 5x the pipeline, >= 0.9x direct llama.cpp, TTFT <= 0.3 s, probabilities <= 15%."""
    base_tps = median(runs["pipeline fp32"], "tps")
    auto_tps, auto_ttft = median(runs["app auto"], "tps"), median(runs["app auto"], "ttft")
    print(f"\napp auto answered with {runs['app auto'][-1]['engine']} ({runs['app auto'][-1]['precision']}): "
          f"{auto_tps / base_tps:.2f}x the pipeline's decode speed (goal >= 5x), TTFT {auto_ttft:.3f} s "
          f"(goal <= 0.3 s; pipeline {median(runs['pipeline fp32'], 'ttft'):.3f} s)")
    direct = [name for name in runs if name.startswith("llama.cpp direct")]
    if direct:
        best = max(direct, key=lambda name: median(runs[name], "tps"))
        print(f"app auto over the fastest direct llama.cpp ({best}): {auto_tps / median(runs[best], 'tps'):.2f}x "
              f"decode (goal >= 0.9x), TTFT {median(runs[best], 'ttft'):.3f} s direct")
    if "app llama.cpp loop, probs" in runs:
        plain, probs = median(runs["app llama.cpp loop, no probs"], "tps"), median(runs["app llama.cpp loop, probs"],
                                                                                   "tps")
        print(f"token-view probabilities on llama.cpp (softmax + top-5 per token): {1 - probs / plain:+.1%} decode "
              f"speed cost (goal <= 15%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--all", action="store_true", help="also the fresh-thread, bf16 and int8-weight rows")
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
    print(f"transformers auto precision: {choice.precision} ({choice.reason}); measured once in {took:.1f} s")
    for name, m in choice.measurements.items():
        print(f"  {name:12s} perplexity {m['ppl']:8.3f}   decode step {1000 * m['step_s']:6.1f} ms")

    # Baseline: the pipeline called from the main thread, as a plain script does. The app runs every generation
    # in one long-lived compute thread (ctx.compute, pipelines/generation/threads.py ComputeThread).
    variants = variants_of(service, pipe, args, choice.precision)
    for fn in variants.values():  # warm-up: loads, first-call allocations
        fn()
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            runs[name].append(fn())

    base = runs["pipeline fp32"]
    base_tps, base_ttft, base_ids = median(base, "tps"), median(base, "ttft"), base[-1]["ids"]
    print(f"\n{'variant':30s} {'tokens/s':>9s} {'x pipeline':>10s} {'TTFT s':>8s} {'x pipeline':>10s} "
          f"{'same tokens, free-run':>22s}")
    for name, rs in runs.items():
        tps, ttft, ids = median(rs, "tps"), median(rs, "ttft"), rs[-1]["ids"]
        same = sum(a == b for a, b in zip(ids, base_ids, strict=False)) / max(len(base_ids), 1)
        print(f"{name:30s} {tps:9.2f} {tps / base_tps:9.2f}x {ttft:8.3f} {base_ttft / ttft:9.2f}x {same:21.0%}")
    tuner = ctx.compute.tuner
    print(f"\napp compute thread: {tuner.best} torch thread(s) chosen from measured decoding steps "
          f"(candidates {tuner.counts})")
    report_goals(runs)
    identical = runs["app fp32"][-1]["ids"] == base_ids
    fp32_ppl = choice.measurements["float32"]["ppl"]
    auto_ppl = choice.measurements[choice.precision]["ppl"]
    prompt_ids = loaded.tokenizer(PROMPT).input_ids
    for precision in ("auto", "bfloat16", "int8-weight") if args.all else ("auto",):
        engine = service.engine(MODEL, precision, engine="transformers")
        share = ctx.compute.run(lambda m=engine.model: forced_agreement(m, prompt_ids, base_ids))
        print(f"app transformers {precision} ({engine.precision.split(',')[0]}): greedy token equal to fp32's at "
              f"{share:.0%} of the {len(base_ids)} positions of fp32's answer (teacher-forced)")
    print(f"app fp32 greedy output identical to the pipeline's: {identical}")
    print(f"app transformers auto ({choice.precision}) perplexity change on the held-out text: "
          f"{auto_ppl / fp32_ppl - 1:+.2%}")
    print("Note: other processes share this CPU; ratios come from interleaved runs in one process, absolute "
          "numbers move with the machine's load.")
    print(f"ratio {median(runs['app auto'], 'tps') / base_tps:.2f}")


if __name__ == "__main__":
    main()
