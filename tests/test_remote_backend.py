"""Remote OpenAI-compatible backends in the Generate tab: the app's own /v1 server (and llama.cpp's, when it is
installed) as a real remote, and scripted servers for every failure."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from components.generate_handlers import GenerateHandlers
from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.engines import Backends, EnginesConfig, backends_of, use_backends
from pipelines.engines.remote import parse_backends
from pipelines.errors import InputError, ModelLoadError
from pipelines.generation import GenerationService, GenerationSettings
from tests.app_server import free_port
from tests.engines_server import LLAMA_CPP, http_head, launched, llama_server, openai_app, scripted_server, serve_app

MODEL = "smollm2-135m-instruct"
GREEDY = GenerationSettings(max_new_tokens=8, do_sample=False, mode="chat")


def _backends(spec: str, **kwargs) -> Backends:
    return Backends(EnginesConfig(backends=spec, retries=2, backoff_s=0.05, **kwargs))


@pytest.fixture(scope="module")
def remote(tmp_path_factory, shared_cache_dir: Path):
    """The app's own /v1 server (with a key) as a remote endpoint, plus a separate app context that uses it."""
    server_ctx = AppContext.create(AppConfig(data_dir=tmp_path_factory.mktemp("srv"), cache_dir=shared_cache_dir))
    client_ctx = AppContext.create(AppConfig(data_dir=tmp_path_factory.mktemp("cli"), cache_dir=shared_cache_dir))
    with serve_app(openai_app(server_ctx, EnginesConfig(api_key="k3y"))) as url:
        registry = use_backends(client_ctx, _backends(f"self={url}|k3y"))
        yield {"url": url, "ctx": client_ctx, "server_ctx": server_ctx, "backends": registry}


def test_endpoints_from_the_environment_never_show_their_key(monkeypatch) -> None:
    assert parse_backends("a=http://h:1|sk-1; b=http://h:2/v1/") == [("a", "http://h:1", "sk-1"),
                                                                      ("b", "http://h:2/v1/", "")]
    monkeypatch.setenv("LMW_BACKENDS", "a=http://h:1|sk-secret;b=https://h:2/v1/")
    registry = Backends()
    assert registry.names() == ["a", "b"]
    a = registry.get("a")
    assert a.url == "http://h:1/v1" and registry.get("b").url == "https://h:2/v1"
    assert "sk-secret" not in repr(a) and "sk-secret" not in repr(registry.config)
    assert "sk-secret" not in json.dumps(a.view(), default=str) and a.view()["key_set"] is True
    with pytest.raises(InputError) as info:
        registry.add("c", "http://user:pw@h:3")
    assert info.value.key == "engines.error.url_credentials"
    with pytest.raises(InputError):
        registry.add("bad name!", "http://h:4")


def test_probe_lists_models_with_latency(remote) -> None:
    probe = remote["backends"].probe("self")
    assert probe.ok and probe.latency_ms is not None and probe.latency_ms >= 0
    assert MODEL in probe.models
    assert (f"{MODEL} (self)", f"remote:self/{MODEL}") in remote["backends"].choices()


def test_remote_chat_equals_local_chat_and_has_a_token_view(remote) -> None:
    handlers = GenerateHandlers(remote["ctx"])
    local = GenerationService(remote["server_ctx"]).generate(MODEL, "Name a fruit.", GREEDY)
    views = list(handlers.stream("s1", f"remote:self/{MODEL}", "Name a fruit.", GREEDY))
    final = views[-1]
    assert final.done and final.text == local.text
    assert "lmw-tok" in final.tokens  # the token view, built from the server's logprobs
    result = GenerationService(remote["ctx"]).generate(f"remote:self/{MODEL}", "Name a fruit.", GREEDY)
    assert result.device == "remote:self" and result.text == local.text
    assert result.prompt_tokens == local.prompt_tokens
    assert len(result.tokens) == len([t for t in local.tokens if not t.special])
    assert all(0 < t.prob <= 1 and t.top for t in result.tokens)
    assert not [n for n in result.notes if n.key == "engines.note.no_logprobs"]


def test_remote_completion_and_stop_strings(remote) -> None:
    service = GenerationService(remote["ctx"])
    settings = GenerationSettings(max_new_tokens=12, do_sample=False, mode="completion")
    free = service.generate(f"remote:self/{MODEL}", "Count: 1, 2, 3,", settings)
    assert "5" in free.text and free.mode == "completion"
    cut = service.generate(f"remote:self/{MODEL}", "Count: 1, 2, 3,", GenerationSettings(
        max_new_tokens=12, do_sample=False, mode="completion", stop_strings=["5"]))
    assert cut.text == free.text[: free.text.index("5")]


def test_stop_closes_the_remote_stream(remote) -> None:
    handlers = GenerateHandlers(remote["ctx"])
    settings = GenerationSettings(max_new_tokens=400, do_sample=False, mode="completion")
    views = handlers.stream("s2", f"remote:self/{MODEL}", "Write a long story about a cat:", settings)
    first = next(views)
    assert not first.done
    handlers.stop("s2")
    rest = list(views)
    assert rest[-1].done and rest[-1].stats
    result = remote["ctx"].sessions.get("s2", "generate")
    assert result is None  # the run is forgotten once it ended
    assert len(rest[-1].text) < 400 * 3


def test_explorer_refuses_remote_models(remote) -> None:
    with pytest.raises(InputError) as info:
        GenerationService(remote["ctx"]).next_tokens(f"remote:self/{MODEL}", "Hi", GREEDY)
    assert info.value.key in ("engines.error.remote_no_internals", "engines.error.remote_no_internals_local")


def _fail(ctx: AppContext, registry: Backends, ref: str) -> ModelLoadError:
    use_backends(ctx, registry)
    with pytest.raises(ModelLoadError) as info:
        GenerationService(ctx).generate(ref, "Hello", GREEDY)
    assert info.value.render("zh-CN") != info.value.render("en")  # translated, one sentence
    return info.value


def test_unreachable_host_fails_fast_with_one_sentence(ctx) -> None:
    error = _fail(ctx, _backends(f"dead=http://127.0.0.1:{free_port()}"), f"remote:dead/{MODEL}")
    assert error.key == "engines.error.remote_unreachable" and "dead" in str(error)
    probe = backends_of(ctx).probe("dead")
    assert not probe.ok and probe.error.key == "engines.error.remote_unreachable"


def test_wrong_key_and_unknown_model(remote, ctx) -> None:
    wrong = _backends(f"self={remote['url']}|wrong")
    assert _fail(ctx, wrong, f"remote:self/{MODEL}").key == "engines.error.remote_auth"
    assert backends_of(ctx).probe("self").error.key == "engines.error.remote_auth"
    error = _fail(ctx, _backends(f"self={remote['url']}|k3y"), "remote:self/no-such-model")
    assert error.key == "engines.error.remote_not_found" and "no-such-model" in str(error)
    with pytest.raises(ModelLoadError) as info:
        GenerationService(ctx).generate("remote:other/x", "Hello", GREEDY)
    assert info.value.key == "engines.error.unknown_endpoint"


def _sse(*events: str) -> bytes:
    return "".join(f"data: {e}\n\n" for e in events).encode()


CHUNK = json.dumps({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]})
LAST = json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})


def test_a_stream_cut_mid_way_is_reported(ctx) -> None:
    def respond(conn, _n):
        conn.sendall(http_head("200 OK", {"Content-Type": "text/event-stream"}) + _sse(CHUNK))
        time.sleep(0.1)  # then the server dies: the connection closes without [DONE]

    with scripted_server(respond) as (url, _):
        assert _fail(ctx, _backends(f"cut={url}"), "remote:cut/m").key == "engines.error.stream_truncated"


def test_a_malformed_stream_is_reported(ctx) -> None:
    def respond(conn, _n):
        conn.sendall(http_head("200 OK", {"Content-Type": "text/event-stream"}) + _sse(CHUNK, "{oops"))

    with scripted_server(respond) as (url, _):
        assert _fail(ctx, _backends(f"bad={url}"), "remote:bad/m").key == "engines.error.stream_malformed"


def test_429_is_retried_with_back_off_then_answers_without_logprobs(ctx) -> None:
    def respond(conn, n):
        if n == 0:
            conn.sendall(http_head("429 Too Many Requests", {"Retry-After": "0", "Content-Length": "0"}))
        else:
            conn.sendall(http_head("200 OK", {"Content-Type": "text/event-stream"}) + _sse(CHUNK, LAST, "[DONE]"))

    with scripted_server(respond) as (url, seen):
        use_backends(ctx, _backends(f"busy={url}"))
        result = GenerationService(ctx).generate("remote:busy/m", "Hello", GREEDY)
    assert len(seen) == 2 and result.text == "Hi" and result.done
    assert [n.key for n in result.notes] == ["engines.note.no_logprobs"]


def test_429_that_persists_and_a_silent_server(ctx) -> None:
    def busy(conn, _n):
        conn.sendall(http_head("429 Too Many Requests", {"Content-Length": "0"}))

    with scripted_server(busy) as (url, seen):
        assert _fail(ctx, _backends(f"busy={url}"), "remote:busy/m").key == "engines.error.remote_busy"
    assert len(seen) == 3  # the first try and two retries

    def silent(conn, _n):
        time.sleep(2)

    with scripted_server(silent) as (url, _):
        registry = _backends(f"slow={url}", read_timeout_s=0.5)
        assert _fail(ctx, registry, "remote:slow/m").key == "engines.error.remote_timeout"


def test_stop_closes_a_stalled_stream(ctx) -> None:
    """Stop ends the answer even when the server stalls mid-stream (without it this run ends in an error when
    the server finally closes the connection)."""
    def stall(conn, _n):
        conn.sendall(http_head("200 OK", {"Content-Type": "text/event-stream"}) + _sse(CHUNK))
        time.sleep(3)

    with scripted_server(stall) as (url, _):
        use_backends(ctx, _backends(f"stall={url}", read_timeout_s=30))
        stopper = threading.Event()
        stream = GenerationService(ctx).stream("remote:stall/m", "Hello", GREEDY, stop_event=stopper)
        assert next(stream).text == "Hi"
        threading.Timer(0.3, stopper.set).start()
        last = list(stream)[-1]
    assert last.done and last.stop_reason == "stopped" and last.text == "Hi"


@pytest.mark.skipif(not LLAMA_CPP, reason="llama_cpp (llama-cpp-python[server]) is not installed in this venv")
def test_llama_cpp_server_as_a_remote(ctx, tmp_path) -> None:
    with llama_server(tmp_path, "--n_ctx", "1024", "--model_alias", "smol") as url:
        registry = use_backends(ctx, _backends(f"llama={url}"))
        assert registry.probe("llama").ok and "smol" in registry.probe("llama").models
        result = GenerationService(ctx).generate("remote:llama/smol", "Name a fruit.", GREEDY)
        assert result.text.strip() and result.done
        assert result.tokens and all(0 < t.prob <= 1 for t in result.tokens)  # llama.cpp returns logprobs
        stopper = threading.Event()
        stream = GenerationService(ctx).stream("remote:llama/smol", "Tell a long story.", GenerationSettings(
            max_new_tokens=300, do_sample=False, mode="chat"), stop_event=stopper)
        next(stream)
        stopper.set()
        assert list(stream)[-1].stop_reason == "stopped"


@pytest.fixture(scope="module")
def ui_app(tmp_path_factory, shared_cache_dir: Path):
    """The Generate tab and the Backends section in one Gradio app, with the /v1 router on the same port
    (as app.py mounts it): the app is its own remote."""
    import gradio as gr

    from components.backends import build_backends_section
    from components.generate import build_generate_tab
    from components.openai_api import openai_routes

    ctx = AppContext.create(AppConfig(data_dir=tmp_path_factory.mktemp("ui"), cache_dir=shared_cache_dir))
    use_backends(ctx, _backends(""))
    with gr.Blocks() as demo:
        with gr.Tab("Generate"):
            build_generate_tab(ctx)
        with gr.Tab("Models"):
            build_backends_section(ctx)
    with launched(demo, openai_routes(ctx, EnginesConfig())) as url:
        yield {"url": url, "ctx": ctx}


@pytest.mark.browser
def test_backends_section_and_remote_generation_in_the_browser(browser, ui_app, artifacts_dir) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(ui_app["url"], wait_until="load")
        page.get_by_role("tab", name="Models").click()
        page.get_by_text("Remote backends").click()
        page.locator("#backends-name input, #backends-name textarea").first.fill("self")
        page.locator("#backends-url textarea, #backends-url input").first.fill("ftp://nowhere")
        page.locator("#backends-add").click()
        expect(page.locator("#backends-errors")).to_contain_text("not an http(s) address", timeout=30_000)
        assert page.locator("#backends-url textarea, #backends-url input").first.input_value() == "ftp://nowhere"
        page.locator("#backends-url textarea, #backends-url input").first.fill(ui_app["url"])
        page.locator("#backends-key input").fill("sk-TOPSECRET")
        page.locator("#backends-add").click()
        table = page.locator("#backends-table")
        expect(table).to_contain_text("reachable", timeout=30_000)
        expect(table).to_contain_text(MODEL)
        expect(page.locator("#backends-errors")).to_have_text("")
        assert "sk-TOPSECRET" not in page.content() and page.locator("#backends-key input").input_value() == ""
        page.locator("#backends-name input, #backends-name textarea").first.fill("dead")
        page.locator("#backends-url textarea, #backends-url input").first.fill(f"http://127.0.0.1:{free_port()}")
        page.locator("#backends-add").click()
        expect(table).to_contain_text("cannot be reached", timeout=30_000)
        page.screenshot(path=str(artifacts_dir / "backends-section.png"), full_page=True)

        page.get_by_role("tab", name="Generate").click()
        picker = page.locator("#generate-model input")
        picker.click()
        page.get_by_role("option", name=f"{MODEL} (self)").click()
        page.locator("#generate-prompt textarea").fill("Name a fruit.")
        page.locator("#generate-run").click()
        tokens = page.locator("#generate-tokens .lmw-tok")
        expect(tokens.first).to_be_visible(timeout=120_000)
        expect(page.locator("#generate-stats")).to_contain_text(re.compile("remote:self", re.I), timeout=60_000)
        assert page.locator("#generate-chat").inner_text().strip()
        finished = re.compile("end of answer|max new tokens reached")
        expect(page.locator("#generate-stats")).to_contain_text(finished, timeout=120_000)
        page.screenshot(path=str(artifacts_dir / "generate-remote-answer.png"), full_page=True)
        picker.fill(f"remote:dead/{MODEL}")
        picker.press("Enter")
        page.locator("#generate-prompt textarea").fill("Hello again")
        page.locator("#generate-run").click()
        try:
            expect(page.locator("#generate-errors")).to_contain_text("cannot be reached", timeout=60_000)
        finally:
            page.screenshot(path=str(artifacts_dir / "generate-remote-error.png"), full_page=True)
        assert page.locator("#generate-prompt textarea").input_value() == "Hello again"  # the input is kept
        page.screenshot(path=str(artifacts_dir / "generate-remote.png"), full_page=True)
    finally:
        context.close()
