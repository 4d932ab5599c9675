"""The workbench as an OpenAI-compatible server, driven by the official ``openai`` client over real HTTP."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import httpx
import pytest

from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.engines.config import EnginesConfig
from pipelines.limits import Limits
from tests.engines_server import openai_app, serve_app

openai = pytest.importorskip("openai", reason="the openai client (requirements-dev.txt) is not installed")
MODEL = "smollm2-135m-instruct"


class SmallConfig(AppConfig):
    """A config whose token cap is 3, to see ``max_tokens`` capped by ``ctx.limits.max_new_tokens``."""

    @property
    def limits(self) -> Limits:
        return Limits(max_new_tokens=3)


def _adapter_run(ctx: AppContext, tiny_root: Path) -> str:
    """A tiny LoRA run on the tiny llama (cheap), registered as ``run:api-run``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = str(tiny_root / "tiny-llama")
    run_dir = ctx.config.runs_dir / "api-run"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(run_dir / "adapter")
    meta = {"task": "causal-lm", "base_model": base, "status": "complete", "name": "api"}
    (run_dir / "run.json").write_text(json.dumps(meta))
    return "run:api-run"


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_cache_dir: Path, tiny_root: Path):
    data = tmp_path_factory.mktemp("openai-data")
    ctx = AppContext.create(AppConfig(data_dir=data, cache_dir=shared_cache_dir, extra_model_roots=[tiny_root]))
    run = _adapter_run(ctx, tiny_root)
    with serve_app(openai_app(ctx, EnginesConfig())) as url:
        yield {"url": url, "ctx": ctx, "run": run}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_embedded_causal_lms_and_runs(client, server) -> None:
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    assert server["run"] in ids
    assert "minilm-l6" not in ids  # an encoder is no chat model
    assert client.models.retrieve(MODEL).id == MODEL


def test_chat_completion_with_usage(client) -> None:
    reply = client.chat.completions.create(model=MODEL, max_tokens=8, temperature=0,
                                           messages=[{"role": "system", "content": "Be brief."},
                                                     {"role": "user", "content": "Say hello."}])
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == MODEL
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5 and 0 < reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert choice.logprobs is None


def test_completion_logprobs_match_the_text(client) -> None:
    reply = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0,
                                      logprobs=3)
    choice = reply.choices[0]
    assert reply.object == "text_completion"
    lp = choice.logprobs
    assert "".join(lp.tokens) == choice.text
    assert len(lp.token_logprobs) == len(lp.tokens) and all(x <= 0 for x in lp.token_logprobs)
    assert all(0 < len(top) <= 3 for top in lp.top_logprobs)
    assert lp.text_offset[0] == 0


def test_streaming_chat_equals_the_whole_answer(client) -> None:
    kwargs = {"model": MODEL, "max_tokens": 10, "temperature": 0, "seed": 1,
              "messages": [{"role": "user", "content": "Name a colour."}]}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(**kwargs, stream=True, logprobs=True, top_logprobs=2,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [finishes[0]] and finishes[0] in ("stop", "length")
    tokens = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert "".join(t.token for t in tokens) == text
    assert all(len(t.top_logprobs) == 2 for t in tokens)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_stop_strings_cut_streamed_and_whole_answers(client) -> None:
    prompt = "Count: 1, 2, 3,"
    free = client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0).choices[0].text
    assert "5" in free, free  # the test needs a stop string the model really reaches
    kwargs = {"model": MODEL, "prompt": prompt, "max_tokens": 12, "temperature": 0, "stop": ["5"]}
    whole = client.completions.create(**kwargs).choices[0]
    assert whole.text == free[: free.index("5")] and whole.finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(**kwargs, stream=True) if c.choices)
    assert streamed == whole.text


def test_max_tokens_is_capped_by_the_app_limit(tmp_path, shared_cache_dir, tiny_root) -> None:
    ctx = AppContext.create(SmallConfig(data_dir=tmp_path, cache_dir=shared_cache_dir, extra_model_roots=[tiny_root]))
    with serve_app(openai_app(ctx, EnginesConfig())) as url:
        small = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
        reply = small.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=50, temperature=0)
    assert reply.usage.completion_tokens == 3 and reply.choices[0].finish_reason == "length"


def test_a_run_adapter_answers_by_name(client, server) -> None:
    reply = client.completions.create(model=server["run"], prompt="hello", max_tokens=3, temperature=0)
    assert reply.model == server["run"] and reply.usage.completion_tokens >= 1


def test_a_burst_queues_instead_of_failing(client) -> None:
    def ask(i: int) -> int:
        return client.completions.create(model=MODEL, prompt=f"{i} + {i} =", max_tokens=3, temperature=0
                                         ).usage.completion_tokens

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(n >= 1 for n in pool.map(ask, range(4)))


@pytest.mark.parametrize(("extra", "status", "code"), [
    ({"model": "no-such-model"}, 404, "model_not_found"),
    ({"n": 2}, 400, "engines.error.only_one_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "engines.error.unsupported"),
    ({"top_logprobs": 9, "logprobs": True}, 400, "engines.error.too_many_logprobs"),
    ({"temperature": 7}, 400, "engines.error.bad_field"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "engines.error.last_not_user"),
])
def test_errors_have_the_openai_shape_and_status(server, extra, status, code) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **extra}
    response = httpx.post(server["url"] + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["type"] and error["message"].endswith(".")


def test_client_errors_are_typed(client) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert "nope" in info.value.message
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="hi", n=3)
    bad = httpx.post(str(client.base_url).rstrip("/") + "/completions", content=b"{not json", timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "engines.error.bad_json"


def test_a_key_is_required_when_configured(tmp_path, shared_cache_dir) -> None:
    ctx = AppContext.create(AppConfig(data_dir=tmp_path, cache_dir=shared_cache_dir))
    with serve_app(openai_app(ctx, EnginesConfig(api_key="s3cret"))) as url:
        wrong = openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            wrong.models.list()
        assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
        right = openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0)
        assert MODEL in [m.id for m in right.models.list()]


def test_thread_tuner_survives_a_try_cut_short_by_the_end_of_a_generation(monkeypatch) -> None:
    """A defect found by the API tests: a generation that ended while the tuner was trying the other thread count
    left it 'exploring'; the next generation's steps then went to the best count and the decision read an empty
    sample list (``min() arg is an empty sequence``), failing that generation."""
    from pipelines.generation import threads

    clock = [0.0]
    monkeypatch.setattr(threads.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(threads, "set_thread_count", lambda n: None)
    tuner = threads.ThreadTuner((2, 1))
    tuner.apply()
    tuner.tick()
    for _ in range(threads.EXPLORE_EVERY):  # the last step starts a try of one thread...
        clock[0] += 0.05
        tuner.tick()
    assert tuner.exploring and tuner.current == 1
    tuner.apply()  # ...but the generation ended: the next one starts on the best count
    tuner.tick()
    for _ in range(threads.EXPLORE_STEPS + 1):
        clock[0] += 0.05
        tuner.tick()  # raised ValueError before the fix
    assert tuner.current in (1, 2)
