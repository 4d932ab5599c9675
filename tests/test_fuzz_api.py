"""Hostile input for the OpenAI-compatible ``/v1`` API: schemathesis against its OpenAPI schema over real HTTP, and
Hypothesis on the wire parser's plain inputs.

Served model: a LoRA run on the tiny random llama (``run:fuzz-run``) with a 2-token cap, so every generated request
is cheap. Bounded for CI: a few dozen schemathesis cases per operation, a few hundred parser bodies.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.engines.config import EnginesConfig
from pipelines.engines.openai_wire import ApiRequest, error_body, parse_request
from pipelines.errors import InputError
from pipelines.limits import Limits
from tests.engines_server import openai_app, serve_app

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (requirements-dev.txt) is not installed")
RUN = "run:fuzz-run"
REQUEST_TIMEOUT = 60  # seconds: a hang fails the case
FUZZ_EXAMPLES = 20  # negative POST cases; valid ones (which generate) get half
PARSER_EXAMPLES = 300
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "site-packages", "Exception in ASGI")


class FuzzConfig(AppConfig):
    """At most 2 new tokens per request."""

    @property
    def limits(self) -> Limits:
        return Limits(max_new_tokens=2)


def _tiny_run(ctx: AppContext, tiny_root: Path) -> str:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = str(tiny_root / "tiny-llama")
    run_dir = ctx.config.runs_dir / "fuzz-run"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(run_dir / "adapter")
    meta = {"task": "causal-lm", "base_model": base, "status": "complete", "name": "fuzz"}
    (run_dir / "run.json").write_text(json.dumps(meta))
    return RUN


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, shared_cache_dir: Path, tiny_root: Path):
    data = tmp_path_factory.mktemp("fuzz-data")
    ctx = AppContext.create(FuzzConfig(data_dir=data, cache_dir=shared_cache_dir, extra_model_roots=[tiny_root]))
    _tiny_run(ctx, tiny_root)
    with serve_app(openai_app(ctx, EnginesConfig())) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(fuzz_server: str):
    """The served OpenAPI document, with ``model`` pinned to the tiny run so valid cases reach generation."""
    document = httpx.get(fuzz_server + "/openapi.json", timeout=30).json()
    for path in ("/v1/chat/completions", "/v1/completions"):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        body["properties"]["model"] = {"enum": [RUN]}
    return schemathesis.openapi.from_dict(document)


def _check_answer(response) -> None:
    """No 5xx, no traceback; errors are OpenAI-style objects; streams are well-formed SSE."""
    text = response.text
    assert response.status_code < 500, text[:500]
    assert not any(marker in text for marker in TRACEBACK_MARKERS), text[:500]
    kind = response.headers.get("content-type", "")
    kind = kind[0] if isinstance(kind, list) else kind  # schemathesis gives every header as a list
    if kind.startswith("text/event-stream"):
        events = [line.removeprefix("data: ") for line in text.split("\n\n") if line.strip()]
        assert events and events[-1] == "[DONE]", text[-300:]
        for event in events[:-1]:
            assert "error" not in json.loads(event), event
        return
    payload = response.json()
    if response.status_code >= 400:
        error = payload["error"]
        assert error["message"] and error["type"] in ("invalid_request_error", "rate_limit_error"), payload
    else:
        assert isinstance(payload, dict) and ("choices" in payload or "data" in payload or "id" in payload), payload


OPERATIONS = (("/v1/chat/completions", "POST", "positive"), ("/v1/chat/completions", "POST", "negative"),
              ("/v1/completions", "POST", "positive"), ("/v1/completions", "POST", "negative"),
              ("/v1/models", "GET", "positive"), ("/v1/models/{model_id}", "GET", "positive"))  # GETs: nothing to break


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS)
def test_fuzzed_requests_get_an_answer_or_a_clean_error(api_schema, fuzz_server: str, path: str, method: str,
                                                        mode: str) -> None:
    """Schema-valid (positive) and schema-breaking (negative) cases: never a 5xx, a hang or a traceback."""
    strategy = api_schema[path][method].as_strategy(generation_mode=schemathesis.GenerationMode(mode))
    examples = {"POST": FUZZ_EXAMPLES, "GET": 5}[method] // (2 if (method, mode) == ("POST", "positive") else 1)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              phases=(Phase.explicit, Phase.generate))  # no shrinking: the failing case is printed as found
    @given(case=strategy)
    def fuzz(case) -> None:
        response = case.call(base_url=fuzz_server, timeout=REQUEST_TIMEOUT)
        try:
            _check_answer(response)
        except AssertionError as exc:
            where = f"{case.method} {case.path} {case.path_parameters}"
            raise AssertionError(f"{where} body={case.body!r}: {exc}") from None

    fuzz()


def test_the_api_is_alive_after_fuzzing(fuzz_server: str) -> None:
    body = {"model": RUN, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3, "temperature": 0}
    response = httpx.post(fuzz_server + "/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] >= 1
    assert RUN in [m["id"] for m in httpx.get(fuzz_server + "/v1/models", timeout=30).json()["data"]]


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,  # nested too deeply for the JSON parser
    b'{"model": "\xff\xfe", "prompt": "x"}',  # not UTF-8
    b'{"model": "' + RUN.encode() + b'", "prompt": "\\ud800 lone surrogate", "max_tokens": 2}',
    b'{"model": "\\udfff", "messages": [{"role": "\\ud800", "content": "x"}]}',
    b'{"model": NaN, "prompt": Infinity}',
    b'{"model": "' + RUN.encode() + b'", "prompt": "\\u0004", "max_tokens": 2}',  # zero tokens: was a 500
    b'{"model": "' + RUN.encode() + b'", "messages": [{"role": "user", "content": "\\u0013\\u001d"}]}',
])
def test_hostile_bodies_get_a_clean_answer(fuzz_server: str, body: bytes) -> None:
    response = httpx.post(fuzz_server + "/v1/completions", content=body, timeout=REQUEST_TIMEOUT,
                          headers={"content-type": "application/json"})
    _check_answer(response)
    response = httpx.post(fuzz_server + "/v1/chat/completions", content=body, timeout=REQUEST_TIMEOUT,
                          headers={"content-type": "application/json"})
    _check_answer(response)


def test_a_10_mb_prompt_is_refused_with_413_before_it_is_read(fuzz_server: str) -> None:
    body = json.dumps({"model": RUN, "prompt": "x" * 10 * 2**20}).encode()
    response = httpx.post(fuzz_server + "/v1/completions", content=body, timeout=REQUEST_TIMEOUT,
                          headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "request_too_large" and "10.0 MB" in error["message"], error

    def chunks():  # no Content-Length: the limit applies to the bytes received
        yield b'{"model": "' + RUN.encode() + b'", "prompt": "'
        for _ in range(10):
            yield b"y" * 2**20
        yield b'"}'

    streamed = httpx.post(fuzz_server + "/v1/completions", content=chunks(), timeout=REQUEST_TIMEOUT,
                          headers={"content-type": "application/json"})
    assert streamed.status_code == 413, streamed.text[:300]


def test_a_prompt_over_the_prompt_cap_but_under_the_body_cap_is_refused(fuzz_server: str) -> None:
    body = {"model": RUN, "messages": [{"role": "user", "content": "z" * 250_000}], "max_tokens": 2}
    response = httpx.post(fuzz_server + "/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["code"] == "limits.text_too_long"


# ---- Hypothesis on the wire parser's plain inputs -------------------------------------------------------------------
JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FIELDS = ("model", "messages", "prompt", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop",
          "n", "best_of", "stream", "stream_options", "logprobs", "top_logprobs", "echo", "tools", "response_format",
          "presence_penalty", "frequency_penalty", "user")
MESSAGE = st.fixed_dictionaries({}, optional={"role": st.sampled_from(["user", "assistant", "system", "developer",
                                                                       "tool", ""]) | JSON_VALUES,
                                              "content": JSON_VALUES | st.text()})
NEAR_VALID = st.fixed_dictionaries(
    {"model": st.sampled_from(["m", " m ", "\ud800", ""]) | JSON_VALUES},
    optional={**dict.fromkeys(FIELDS[3:], JSON_VALUES), "messages": st.lists(MESSAGE, max_size=3) | JSON_VALUES,
              "prompt": st.text() | st.lists(st.text(), max_size=2) | JSON_VALUES},
)


def _encodable(value: object) -> None:
    json.dumps(value, ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")


@settings(max_examples=PARSER_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=JSON_VALUES | NEAR_VALID, mode=st.sampled_from(["chat", "completion"]))
def test_any_json_body_parses_or_gives_a_keyed_openai_error(body: object, mode: str) -> None:
    try:
        request = parse_request(body, mode, max_tokens_cap=16)
    except InputError as exc:
        for lang in ("en", "zh-CN"):
            _encodable(error_body(exc.render(lang), "invalid_request_error", exc.key))
        assert exc.key not in exc.render("en")  # the key has a text
        return
    assert isinstance(request, ApiRequest) and request.model
    assert 1 <= request.settings.max_new_tokens <= 16
    _encodable([request.model, request.text, request.system, request.history, request.settings.stop_strings])
    assert not any(ch < " " and ch not in "\t\n\r" for ch in request.text + request.system)
