"""The pieces of remote task prompts that need no server: the bounded in-flight map (order, bound, Stop, a failure
keeps the rows done), token estimates and truncation, joining a reply to its prefill, the engine picker's rule,
matching a remote model to a local one, and the engine settings from the environment."""

from __future__ import annotations

import random
import threading
import time

import pytest

from pipelines.engines.config import EnginesConfig, in_flight_from_env
from pipelines.engines.internals import local_match, model_key, refuse_remote
from pipelines.engines.remote import RemoteEndpoint
from pipelines.engines.remote_batch import map_in_flight, partial_results
from pipelines.engines.remote_task import estimate_tokens, join_prefill, truncate_estimate
from pipelines.errors import InputError, ModelLoadError


class Counter:
    """Counts the calls running at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.started: list[int] = []

    def __call__(self, x: int) -> int:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.started.append(x)
        time.sleep(random.uniform(0.001, 0.02))
        with self.lock:
            self.now -= 1
        return x * 10


def test_map_in_flight_keeps_input_order_and_its_bound() -> None:
    counter = Counter()
    seen: list[tuple[int, int]] = []
    out = map_in_flight(counter, range(40), 4, progress=lambda done, total: seen.append((done, total)))
    assert out == [x * 10 for x in range(40)]
    assert 1 < counter.most <= 4  # several at once, never more than asked
    assert [d for d, _ in seen] == list(range(1, 41)) and {t for _, t in seen} == {40}
    assert map_in_flight(counter, [], 4) == []


def test_stop_starts_nothing_new_and_returns_the_leading_rows_done() -> None:
    stop = threading.Event()
    started: list[int] = []

    def one(x: int) -> int:
        started.append(x)
        if x == 5:
            stop.set()
        time.sleep(0.01)
        return x

    out = map_in_flight(one, range(100), 3, stop=stop)
    assert len(started) < 12  # at most the ones in flight when Stop came
    assert out == list(range(len(out))) and len(out) >= 6  # leading rows, in order, the ones in flight finished


def test_a_failure_stops_new_rows_and_carries_the_rows_done() -> None:
    def one(x: int) -> int:
        if x == 7:
            raise ModelLoadError("engines.error.remote_unreachable", name="lcp")
        time.sleep(0.005)
        return x

    with pytest.raises(ModelLoadError) as info:
        map_in_flight(one, range(50), 2)
    assert info.value.key == "engines.error.remote_unreachable"
    assert partial_results(info.value) == list(range(7))


def test_token_estimates_truncation_and_prefill() -> None:
    assert estimate_tokens("abcdefgh") == 2 and estimate_tokens("今天下雨") == 4 and estimate_tokens("") == 0
    text = "word " * 100
    cut, was_cut = truncate_estimate(text, 10)
    assert was_cut and estimate_tokens(cut) <= 10 and text.startswith(cut)
    assert truncate_estimate("short", 10) == ("short", False)
    assert join_prefill('{"name":', '{"name": "Ada"}') == '{"name": "Ada"}'
    assert join_prefill('{"name":', 'Here it is: {"name": "Ada"}') == '{"name": "Ada"}'
    assert join_prefill('{"name":', '"Ada"}') == '{"name": "Ada"}'


def test_engine_settings_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("LMW_REMOTE_CONCURRENCY", "7")
    assert in_flight_from_env() == 7 and EnginesConfig().max_in_flight == 7
    monkeypatch.setenv("LMW_REMOTE_CONCURRENCY", "lots")
    assert in_flight_from_env() == 4
    monkeypatch.setenv("LMW_REMOTE_CONCURRENCY", "1000")
    assert in_flight_from_env() == 64


def test_the_engine_choice_is_hidden_for_remote_models_and_extractive_summaries() -> None:
    from components.summarize import engine_shown

    assert engine_shown("abstractive", "smollm2-135m-instruct").visible is True
    assert engine_shown("abstractive", "remote:lcp/smol").visible is False
    assert engine_shown("extractive", "minilm-l6").visible is False


def test_a_remote_model_is_matched_to_the_same_local_model(ctx) -> None:
    assert model_key("/models/SmolLM2-135M-Instruct.Q4_1.gguf") == "smollm2-135m-instruct"
    assert model_key("HuggingFaceTB/SmolLM2-135M-Instruct") == "smollm2-135m-instruct"
    assert local_match(ctx, "remote:lcp//m/SmolLM2-135M-Instruct-q8_0.gguf") == "smollm2-135m-instruct"
    assert local_match(ctx, "remote:vllm/sentence-transformers/all-MiniLM-L6-v2") == "minilm-l6"
    assert local_match(ctx, "remote:lcp/qwen2.5-7b-instruct") is None
    refuse_remote(ctx, "smollm2-135m-instruct")  # a local reference passes
    with pytest.raises(InputError) as info:
        refuse_remote(ctx, "remote:lcp/qwen2.5-7b-instruct")
    assert info.value.key == "engines.error.remote_no_internals"
    assert info.value.render("zh-CN") != info.value.render("en")


def test_endpoint_repr_never_shows_the_key() -> None:
    assert "s3cret" not in repr(RemoteEndpoint("lcp", "http://127.0.0.1:1/v1", "s3cret"))


def test_a_tls_failure_is_its_own_sentence(ctx) -> None:
    """An https address whose server does not speak TLS: the handshake fails, and the sentence says so."""
    import socket

    from pipelines.engines import Backends, use_backends
    from pipelines.generation.task_lm import task_lm

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def answer_in_plain_http() -> None:
        for _ in range(3):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer_in_plain_http, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        use_backends(ctx, Backends(EnginesConfig(backends=f"tls=https://127.0.0.1:{port}", retries=0)))
        with pytest.raises(ModelLoadError) as info:
            task_lm(ctx, "remote:tls/m").reply("Hello", max_new_tokens=4)
    finally:
        listener.close()
        thread.join(timeout=5)
    assert info.value.key == "engines.error.remote_tls" and "TLS" in str(info.value)


def test_fine_tuning_refuses_a_remote_base_model_with_one_sentence() -> None:
    from pipelines.config import AppConfig
    from pipelines.errors import InputError
    from pipelines.training.job import base_location

    with pytest.raises(InputError) as info:
        base_location("remote:lcp/smollm2", AppConfig())
    assert info.value.key == "engines.error.remote_no_internals"
    assert "remote:lcp/smollm2" in info.value.render("en")
