"""Batched decoding across requests (issue #20): concurrent generations share forward passes, each keeps its own
output, stream, stop, stop strings, token budget and seed (pipelines/generation/batcher*.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import torch

from pipelines.config import AppConfig, BatchingConfig
from pipelines.context import AppContext
from pipelines.generation import GenerationResult, GenerationService, GenerationSettings

PROMPTS = (
    "The quick brown fox jumps over the lazy dog and",
    "Once upon a time",
    "In a small village by the sea, an old fisherman told the children a long story about",
    "Water boils at",
)
SMOL = "smollm2-135m-instruct"


def completion(**kw: Any) -> GenerationSettings:
    return GenerationSettings(**{"mode": "completion", "precision": "float32", "max_new_tokens": 16,
                                 "do_sample": False, **kw})


@pytest.fixture
def service(ctx: AppContext) -> GenerationService:
    return ctx.generation


@pytest.fixture
def tiny(tiny_root) -> str:
    return str(tiny_root / "tiny-llama")


class ForwardCounter:
    """Counts the forward passes of a model (wraps its ``forward``)."""

    def __init__(self, model: Any, before: Callable[[int], None] | None = None) -> None:
        self.calls = 0
        self.rows: list[int] = []
        self.model, self.original = model, model.forward

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if before is not None:
                before(self.calls)
            ids = kwargs.get("input_ids", args[0] if args else None)
            self.rows.append(0 if ids is None else int(ids.shape[0]))
            return self.original(*args, **kwargs)

        model.forward = counted

    def reset(self) -> None:
        self.calls, self.rows = 0, []

    def remove(self) -> None:
        self.model.forward = self.original


def run_concurrently(ctx: AppContext, jobs: list[Callable[[], Any]], kind: type = GenerationResult) -> list[Any]:
    """Run ``jobs`` in threads that all reach the batcher before its first step (the compute thread is held until
    they wait for it); results in job order."""
    results: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    gate = threading.Event()
    ctx.compute.submit(gate.wait)
    try:
        for thread in threads:
            thread.start()
        for _ in range(2400):
            if ctx.decode_batcher.waiting >= len(jobs) or not any(t.is_alive() for t in threads):
                break
            threading.Event().wait(0.05)
        assert ctx.decode_batcher.waiting == len(jobs), results
    finally:
        gate.set()
    for thread in threads:
        thread.join(timeout=300)
    assert all(isinstance(r, kind) for r in results), results
    return results


def ids_of(result: GenerationResult) -> list[int]:
    return [t.id for t in result.tokens]


def arrive_mid_run(ctx, service, model: str, prompt: str, settings, answers: dict, threads: list,
                   key: str | None = None) -> None:
    """Send ``prompt`` from a new thread as a request arriving while a batch runs (its answer lands in
    ``answers[key or prompt]``); return once the batcher has it waiting."""
    def send() -> None:
        answers[key or prompt] = service.generate(model, prompt, settings)

    thread = threading.Thread(target=send)
    thread.start()
    threads.append(thread)
    for _ in range(2000):
        if ctx.decode_batcher.waiting:
            return
        threading.Event().wait(0.005)


@pytest.mark.parametrize("kind", ["tiny-llama", "tiny-gpt2"])
def test_four_concurrent_greedy_requests_match_sequential_ones_and_share_steps(ctx, service, tiny_root,
                                                                                 kind) -> None:
    ref = str(tiny_root / kind)
    engine = service.engine(ref, "float32")
    settings = completion(max_new_tokens=20)
    counter = ForwardCounter(engine.model)
    try:
        sequential = [service.generate(ref, p, settings) for p in PROMPTS]
        sequential_calls = counter.calls
        counter.reset()
        together = run_concurrently(ctx, [lambda p=p: service.generate(ref, p, settings) for p in PROMPTS])
        concurrent_calls = counter.calls
    finally:
        counter.remove()
    assert [r.text for r in together] == [r.text for r in sequential]
    assert [ids_of(r) for r in together] == [ids_of(r) for r in sequential]
    assert [r.stop_reason for r in together] == [r.stop_reason for r in sequential]
    longest = max(len(r.tokens) for r in sequential)
    assert sequential_calls == sum(len(r.tokens) for r in sequential)  # one forward pass per token, alone
    assert concurrent_calls <= longest + 1  # one prefill for all four, then one pass per step for all rows
    assert concurrent_calls * 3 <= sequential_calls
    assert max(counter.rows) == 4


def test_concurrent_task_prompts_share_decoding_steps_and_match_unbatched_replies(ctx, tiny_root) -> None:
    """Task prompts (summaries, fields, QA) on the transformers engine are rows of the decode batcher: 4 users'
    prompts at once share forward passes and get the replies ``model.generate`` gives each alone."""
    from pipelines.generation.task_lm import LocalTaskLM, task_lm

    lm = task_lm(ctx, str(tiny_root / "tiny-llama"), "transformers")
    assert isinstance(lm, LocalTaskLM) and lm.batcher is ctx.decode_batcher
    alone = LocalTaskLM(lm.loaded)  # no batcher: model.generate, as before
    users = ["Summarise: the cat sat on the mat.", "List two colours.", "What is 2 + 2?", "Say hello to the team."]
    counter = ForwardCounter(lm.loaded.model)
    try:
        sequential = [alone.reply(user, max_new_tokens=12) for user in users]
        sequential_calls = counter.calls
        counter.reset()
        together = run_concurrently(ctx, [lambda u=u: lm.reply(u, max_new_tokens=12) for u in users], kind=str)
        concurrent_calls = counter.calls
    finally:
        counter.remove()
    assert together == sequential
    assert max(counter.rows) == 4, counter.rows  # decoding steps carry all four prompts
    assert concurrent_calls * 3 <= sequential_calls, (concurrent_calls, sequential_calls)


def test_greedy_batch_matches_model_generate_on_smollm2(ctx, service) -> None:
    """Real weights, chat prompts of different lengths: the batched answers are model.generate's, token for token."""
    engine = service.engine(SMOL, "float32")
    settings = GenerationSettings(mode="chat", precision="float32", max_new_tokens=24, do_sample=False,
                                  repetition_penalty=1.0)
    questions = ["What is the capital of France?", "Name three fruits.",
                 "Explain in one sentence why the sky is blue, as if to a child.", "Hi"]
    together = run_concurrently(ctx, [lambda q=q: service.generate(SMOL, q, settings) for q in questions])
    for question, result in zip(questions, together, strict=True):
        ids = service.prepare(engine, question, "chat").ids
        prompt = torch.tensor([ids])
        with torch.inference_mode():
            expected = engine.model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=24,
                                             do_sample=False)[0, len(ids):]
        assert ids_of(result) == expected.tolist()
    assert "Paris" in together[0].text


def test_a_request_arriving_mid_run_joins_the_running_batch(ctx, service, tiny) -> None:
    """Requests that arrive while a batch runs join it between steps (their cache merged into the running one):
    one with a longer prompt than the running sequence so far, one with a shorter one; every answer stays exact."""
    engine = service.engine(tiny, "float32")
    settings = completion(max_new_tokens=40)
    alone = {p: service.generate(tiny, p, settings) for p in PROMPTS[:3]}
    joined: dict[str, GenerationResult] = {}
    threads: list[threading.Thread] = []
    arrivals = {4: PROMPTS[2], 14: PROMPTS[1]}  # forward pass -> the prompt that arrives just before it

    def arrive(call: int) -> None:  # runs in the compute thread, before the forward pass
        prompt = arrivals.pop(call, None)
        if prompt is None:
            return
        arrive_mid_run(ctx, service, tiny, prompt, settings, joined, threads)

    counter = ForwardCounter(engine.model, arrive)
    try:
        first = service.generate(tiny, PROMPTS[0], settings)
        for thread in threads:
            thread.join(timeout=120)
    finally:
        counter.remove()
    assert len(engine.encode(PROMPTS[2], chat=False)) > len(engine.encode(PROMPTS[0], chat=False)) + 3
    assert ids_of(first) == ids_of(alone[PROMPTS[0]])
    for prompt in PROMPTS[1:3]:
        assert ids_of(joined[prompt]) == ids_of(alone[prompt])
    assert max(counter.rows) == 3 and counter.rows.count(2) >= 8  # steps carried two, then three rows
    assert counter.calls < sum(len(r.tokens) for r in alone.values())


def test_stop_of_one_request_leaves_the_others_untouched(ctx, service, tiny) -> None:
    settings = completion(max_new_tokens=30)
    expected = [service.generate(tiny, p, settings) for p in PROMPTS[1:]]
    stop = threading.Event()
    seen: list[int] = []

    def stopped() -> GenerationResult:
        final = None
        for snapshot in service.stream(tiny, PROMPTS[0], completion(max_new_tokens=200), stop_event=stop):
            if len(snapshot.tokens) == 3:
                stop.set()
            seen.append(len(snapshot.tokens))
            final = snapshot
        return final

    jobs = [stopped, *[lambda p=p: service.generate(tiny, p, settings) for p in PROMPTS[1:]]]
    results = run_concurrently(ctx, jobs)
    assert results[0].stop_reason == "stopped" and 3 <= len(results[0].tokens) < 200
    assert [r.text for r in results[1:]] == [r.text for r in expected]
    assert [r.stop_reason for r in results[1:]] == [r.stop_reason for r in expected]


def test_a_closed_stream_leaves_the_batch_and_the_others_finish(ctx, service, tiny) -> None:
    settings = completion(max_new_tokens=24)
    expected = service.generate(tiny, PROMPTS[1], settings)

    def abandoned() -> GenerationResult:
        stream = service.stream(tiny, PROMPTS[0], completion(max_new_tokens=200))
        snapshot = next(stream)
        snapshot = next(stream)
        stream.close()  # the client went away: its row must leave at the next step
        return snapshot

    results = run_concurrently(ctx, [abandoned, lambda: service.generate(tiny, PROMPTS[1], settings)])
    assert len(results[0].tokens) == 2 and results[1].text == expected.text
    assert ctx.decode_batcher.waiting == 0


def test_stop_strings_and_token_budgets_are_per_request(ctx, service, tiny) -> None:
    full = service.generate(tiny, PROMPTS[0], completion(max_new_tokens=30))
    words = [t.text for t in full.tokens[6:] if t.text.strip() and full.text.count(t.text) == 1]
    stop = words[0]
    jobs = [
        lambda: service.generate(tiny, PROMPTS[0], completion(max_new_tokens=30, stop_strings=[stop])),
        lambda: service.generate(tiny, PROMPTS[0], completion(max_new_tokens=30)),
        lambda: service.generate(tiny, PROMPTS[1], completion(max_new_tokens=3)),
        lambda: service.generate(tiny, PROMPTS[1], completion(max_new_tokens=11)),
    ]
    cut, plain, short, longer = run_concurrently(ctx, jobs)
    assert cut.stop_reason == "stop_string" and cut.text == full.text[: full.text.index(stop)]
    assert plain.text == full.text and len(plain.tokens) == len(full.tokens)
    if longer.stop_reason == "length":
        assert len(short.tokens) == 3 and len(longer.tokens) == 11
    assert ids_of(longer)[: len(short.tokens)] == ids_of(short)
    assert short.stop_reason in ("length", "eos")


def test_seeds_are_reproducible_in_a_batch(ctx, service, tiny) -> None:
    sampled = completion(do_sample=True, temperature=1.0, top_p=0.95, top_k=40, repetition_penalty=1.1,
                         max_new_tokens=20)
    alone = {seed: service.generate(tiny, PROMPTS[0], replace(sampled, seed=seed)) for seed in (1, 2)}
    jobs = [lambda s=s: service.generate(tiny, PROMPTS[0], replace(sampled, seed=s)) for s in (1, 2, 1)]
    one, two, one_again = run_concurrently(ctx, jobs)
    assert ids_of(one) == ids_of(one_again) == ids_of(alone[1])
    assert ids_of(two) == ids_of(alone[2])
    assert ids_of(one) != ids_of(two)
    assert one.seed == 1 and two.seed == 2


def test_requests_for_two_models_are_each_answered_exactly(ctx, service, tiny_root) -> None:
    llama, gpt2 = str(tiny_root / "tiny-llama"), str(tiny_root / "tiny-gpt2")
    settings = completion(max_new_tokens=12)
    refs = [llama, gpt2, llama, gpt2]
    expected = [service.generate(ref, p, settings).text for ref, p in zip(refs, PROMPTS, strict=True)]
    results = run_concurrently(ctx, [lambda r=r, p=p: service.generate(r, p, settings)
                                     for r, p in zip(refs, PROMPTS, strict=True)])
    assert [r.text for r in results] == expected


def test_token_probabilities_are_the_models_own_in_a_batch(ctx, service, tiny) -> None:
    settings = completion(max_new_tokens=8)
    alone = service.generate(tiny, PROMPTS[2], settings)
    together = run_concurrently(ctx, [lambda p=p: service.generate(tiny, p, settings) for p in PROMPTS])[2]
    for a, b in zip(alone.tokens, together.tokens, strict=True):
        assert a.id == b.id and b.prob == pytest.approx(a.prob, rel=1e-4, abs=1e-6)
        assert b.top[0][0] == a.top[0][0]  # the chosen token leads; near-ties further down may swap places
        assert [p for _, p in b.top] == pytest.approx([p for _, p in a.top], rel=1e-4, abs=1e-6)
    assert together.ttft_s is not None and together.ttft_s > 0


def test_batching_can_be_turned_off(tmp_path, shared_cache_dir, tiny_root, monkeypatch) -> None:
    monkeypatch.setenv("LMW_BATCHING", "0")
    monkeypatch.setenv("LMW_BATCH_MAX", "4")
    assert BatchingConfig.from_env() == BatchingConfig(enabled=False, max_batch=4)
    config = AppConfig(data_dir=tmp_path / "data", cache_dir=shared_cache_dir, extra_model_roots=[tiny_root],
                       decode_batching=BatchingConfig(enabled=False))
    ctx = AppContext.create(config)
    ref = str(tiny_root / "tiny-llama")
    result = ctx.generation.generate(ref, PROMPTS[0], completion())
    assert not ctx.decode_batcher.enabled and ctx.decode_batcher.steps == 0
    on = AppContext.create(AppConfig(data_dir=tmp_path / "on", cache_dir=shared_cache_dir,
                                     extra_model_roots=[tiny_root]))
    batched = on.generation.generate(ref, PROMPTS[0], completion())
    assert batched.text == result.text and on.decode_batcher.steps == len(batched.tokens) - 1


def test_other_compute_work_is_not_starved_by_a_running_batch(ctx, service, tiny) -> None:
    """Work queued for the compute thread while a batch runs (here a plain job) goes before requests that arrive
    after it: the batch stops taking new rows, finishes, the job runs, then the newcomer gets a turn."""
    engine = service.engine(tiny, "float32")
    order: list[int] = []
    late: dict[str, GenerationResult] = {}
    threads: list[threading.Thread] = []

    def arrive(call: int) -> None:  # in the compute thread, before forward pass ``call`` of the running request
        if call != 5:
            return
        ctx.compute.submit(lambda: order.append(counter.calls))  # forward passes run when the job runs
        arrive_mid_run(ctx, service, tiny, PROMPTS[1], completion(max_new_tokens=4), late, threads, key="b")

    counter = ForwardCounter(engine.model, arrive)
    try:
        first = service.generate(tiny, PROMPTS[0], completion(max_new_tokens=30))
        threads[0].join(timeout=120)
    finally:
        counter.remove()
    assert order == [len(first.tokens)]  # the job ran after the running request's last pass, before the newcomer's
    assert counter.calls == len(first.tokens) + len(late["b"].tokens)
    assert late["b"].text == service.generate(tiny, PROMPTS[1], completion(max_new_tokens=4)).text
    assert max(counter.rows) == 1  # the newcomer never joined the running batch


def test_a_request_that_would_pad_the_cache_past_its_budget_waits_its_turn(ctx, service, tiny) -> None:
    engine = service.engine(tiny, "float32")
    ctx.decode_batcher.config = replace(ctx.decode_batcher.config, max_cache_mb=0)
    late: dict[str, GenerationResult] = {}
    threads: list[threading.Thread] = []

    def arrive(call: int) -> None:
        if call != 3:
            return
        arrive_mid_run(ctx, service, tiny, PROMPTS[2], completion(max_new_tokens=6), late, threads, key="b")

    counter = ForwardCounter(engine.model, arrive)
    try:
        first = service.generate(tiny, PROMPTS[0], completion(max_new_tokens=12))
        threads[0].join(timeout=120)
    finally:
        counter.remove()
    assert max(counter.rows) == 1 and counter.calls == len(first.tokens) + len(late["b"].tokens)
    assert late["b"].text == service.generate(tiny, PROMPTS[2], completion(max_new_tokens=6)).text
