"""Remote models in the task tabs (Summarize, Extract, Attention), against llama.cpp's real OpenAI-compatible
server on the embedded SmolLM2 GGUF, started once for the module.

llama-cpp-python 0.3.36's server has no parallel slots (it answers one request at a time), so "4 in flight" is
measured where the app's requests go out: a counting proxy in front of the server records how many were open at
once. Failures: the server going away mid-batch (the proxy drops a connection and stops listening), a wrong key
(401), an unknown model (404, from the workbench's own /v1 server: llama.cpp answers any model name with its one
model), nothing listening, 429/503 retried then answered, and a server that never answers (timeout).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from components.attention_handlers import AttentionHandlers
from components.extract_handlers import ExtractHandlers
from components.summarize_handlers import SummarizeHandlers
from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.engines import Backends, EnginesConfig, use_backends
from pipelines.engines.remote_batch import partial_results
from pipelines.engines.remote_task import RemoteTaskLM
from pipelines.errors import InputError, ModelLoadError
from pipelines.extraction.rows import ExtractRows
from pipelines.messages import Msg
from pipelines.tasks.summarize import AbstractiveConfig, AbstractiveSummarizer
from tests.app_server import free_port
from tests.engines_server import (
    LLAMA_CPP,
    counting_proxy,
    http_head,
    launched,
    llama_server,
    openai_app,
    scripted_server,
    serve_app,
)

KEY = "sk-lcp-test"
CITIES = ("Oslo", "Lima", "Porto", "Dakar", "Hanoi", "Quito", "Perth", "Turin", "Cairo", "Bern")
ITEMS = ("kettle", "bicycle", "lamp", "printer", "guitar", "camera", "sofa", "drill", "heater", "tent")
TEXT = "Apple opened a new office in Berlin on 3 March 2024. Tim Cook said the team will hire 200 engineers."


def _registry(spec: str, **kwargs) -> Backends:
    settings = {"retries": 2, "backoff_s": 0.05, "max_in_flight": 4, "read_timeout_s": 300, **kwargs}
    return Backends(EnginesConfig(backends=spec, **settings))


def _rows(n: int) -> list[dict]:
    return [{"text": f"Customer {i} in {CITIES[i % 10]} bought a {ITEMS[i % 10]}. It broke after {i % 7 + 2} days, "
                     f"so the shop in {CITIES[(i + 3) % 10]} replaced it for free."} for i in range(n)]


def _csv(upload_dir: Path, rows: list[dict], name: str = "rows.csv") -> str:
    path = upload_dir / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _last(outputs) -> tuple:
    return list(outputs)[-1]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """llama.cpp's server on the embedded SmolLM2 GGUF (one thread, a key), as the remote engine of this module."""
    if not LLAMA_CPP:
        pytest.skip("llama_cpp (pip package llama-cpp-python[server]) is not installed in this venv")
    with llama_server(tmp_path_factory.mktemp("llama"), "--n_ctx", "2048", "--n_threads", "1",
                      "--n_threads_batch", "1", "--api_key", KEY, ready="/docs") as url:  # /v1/models needs the key
        models = _registry(f"lcp={url}|{KEY}").probe("lcp").models
        assert models, "the llama.cpp server lists no model"
        yield {"url": url, "model": models[0]}  # its id is the GGUF's path (no --model_alias)


def _ref(llama: dict, endpoint: str = "lcp") -> str:
    return f"remote:{endpoint}/{llama['model']}"


# ---- Summarize ------------------------------------------------------------------------------------------------
def test_csv_summary_batch_of_50_rows_with_4_in_flight(ctx, upload_dir, llama) -> None:
    rows = _rows(50)
    with counting_proxy(llama["url"]) as proxy:
        use_backends(ctx, _registry(f"lcp={proxy.url}|{KEY}"))
        status, preview, files, _, _ = _last(SummarizeHandlers(ctx).summarize_csv(
            _csv(upload_dir, rows), "text", "", "abstractive", _ref(llama), 3, 0, 16, "auto", None))
        single = AbstractiveSummarizer(RemoteTaskLM(ctx, _ref(llama)), AbstractiveConfig(16))
        expected = {i: single.summarize(rows[i]["text"])["summary"] for i in (0, 23, 49)}
    assert "50 of 50 rows (done" in status and f"Written by remote:lcp/{llama['model']}" in status
    assert 1 < proxy.max_in_flight <= 4  # several requests open at once, never more than configured
    assert proxy.requests == 50 + 3
    written = pd.read_csv(files[0])
    assert list(written["text"]) == [r["text"] for r in rows]  # input order kept
    summaries = written["model_summary"].fillna("").tolist()
    assert all(s.strip() for s in summaries) and len(set(summaries)) > 10
    assert {i: summaries[i] for i in expected} == expected  # each row got its own text's summary
    assert len(preview) == 50


def test_the_server_going_away_mid_batch_keeps_the_rows_done(ctx, upload_dir, llama) -> None:
    with counting_proxy(llama["url"], fail_after=20) as proxy:
        use_backends(ctx, _registry(f"lcp={proxy.url}|{KEY}"))
        started = time.monotonic()
        status, preview, files, _, _ = _last(SummarizeHandlers(ctx).summarize_csv(
            _csv(upload_dir, _rows(50)), "text", "", "abstractive", _ref(llama), 3, 0, 16, "auto", None))
    assert time.monotonic() - started < 240  # it ends (with an error), it does not hang
    # every row answered before the endpoint went away is kept: the first mini-batch of 16 (4 x 4 in flight) and
    # the 4 rows of the second one that the proxy still answered
    assert "20 of 50 rows (failed" in status
    sentences = {Msg.of(key, name="lcp").render("en") for key in
                 ("engines.error.remote_unreachable", "engines.error.stream_truncated")}
    assert any(s in status for s in sentences)
    assert len(pd.read_csv(files[0])) == 20 and len(preview) == 20


def test_wrong_key_unknown_model_and_nothing_listening(ctx, upload_dir, llama, tmp_path, shared_cache_dir) -> None:
    handlers = SummarizeHandlers(ctx)

    def summary_error(registry: Backends, ref: str) -> ModelLoadError:
        use_backends(ctx, registry)
        with pytest.raises(ModelLoadError) as info:
            handlers.summarize_text("The sea was calm. The boat left at dawn.", "abstractive", ref, 3, 0, 16, "")
        assert info.value.render("zh-CN") != info.value.render("en")
        return info.value

    assert summary_error(_registry(f"lcp={llama['url']}|wrong"), _ref(llama)).key == "engines.error.remote_auth"
    status, _, files, _, _ = _last(handlers.summarize_csv(_csv(upload_dir, _rows(5)), "text", "", "abstractive",
                                                          _ref(llama), 3, 0, 16, "auto", None))
    assert "0 of 5 rows (failed" in status and "refused the API key (HTTP 401)" in status and files is None
    dead = _registry(f"dead=http://127.0.0.1:{free_port()}")
    assert summary_error(dead, "remote:dead/smol").key == "engines.error.remote_unreachable"
    server_ctx = AppContext.create(AppConfig(data_dir=tmp_path / "srv", cache_dir=shared_cache_dir))
    with serve_app(openai_app(server_ctx, EnginesConfig())) as url:
        error = summary_error(_registry(f"self={url}"), "remote:self/no-such-model")
    assert error.key == "engines.error.remote_not_found" and "no-such-model" in str(error)
    with pytest.raises(InputError) as info:
        handlers.summarize_text("The sea was calm.", "extractive", _ref(llama), 3, 0, 16, "")
    assert info.value.key == "summarize.remote_extractive"


# ---- Extract --------------------------------------------------------------------------------------------------
def test_fields_and_answers_on_the_remote_model(ctx, upload_dir, llama) -> None:
    use_backends(ctx, _registry(f"lcp={llama['url']}|{KEY}"))
    handlers = ExtractHandlers(ctx)
    table, notes, raw = handlers.fields(TEXT, "person, city", _ref(llama), lang="en")
    assert list(table.iloc[:, 0]) == ["person", "city"] and raw.startswith("{")
    assert all(not v or v in TEXT for v in table.iloc[:, 1])  # every value is a span of the text (or empty)
    answer, highlight, details = handlers.answer("Where did Apple open an office?", TEXT, _ref(llama), lang="en")
    assert answer in TEXT and isinstance(details["lm_reply"], str)  # the remote model replied; the span is grounded
    assert highlight["text"] == TEXT


def test_extract_csv_fields_and_answers_go_out_concurrently(ctx, upload_dir, llama) -> None:
    rows = [{"text": f"{name} moved to {city} in {1990 + i}."}
            for i, (name, city) in enumerate(zip(("Ada Lind", "Omar Haddad", "Mei Chen", "Jon Berg", "Lea Roth",
                                                  "Ivan Petrov"), CITIES, strict=False))]
    path = _csv(upload_dir, rows)
    handlers = ExtractHandlers(ctx)
    with counting_proxy(llama["url"]) as proxy:
        use_backends(ctx, _registry(f"lcp={proxy.url}|{KEY}"))
        status, _, files, _, _ = _last(handlers.csv(path, "text", "fields", _ref(llama), "person, city", "", None,
                                                    None, "auto"))
        assert "6 of 6 rows (done" in status and 1 < proxy.max_in_flight <= 4
        fields = pd.read_csv(files[0]).fillna("")
        assert list(fields["text"]) == [r["text"] for r in rows]
        assert all(not v or v in t for v, t in zip(fields["city"], fields["text"], strict=True))
        status, _, files, _, _ = _last(handlers.csv(path, "text", "answer", _ref(llama), "", "Where did they move?",
                                                    None, None, "auto"))
    assert "6 of 6 rows (done" in status and proxy.requests == 12
    answers = pd.read_csv(files[0]).fillna("")
    assert all(not a or a in t for a, t in zip(answers["answer"], answers["text"], strict=True))
    with pytest.raises(InputError) as info:
        list(handlers.csv(path, "text", "entities", _ref(llama), "", "", None, None, "auto"))
    assert info.value.key == "extract.remote_entities"


# ---- retries and timeouts (scripted servers) ------------------------------------------------------------------
def _completion(text: str) -> bytes:
    body = json.dumps({"object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
                                                                 "message": {"role": "assistant", "content": text}}]})
    return http_head("200 OK", {"Content-Type": "application/json", "Content-Length": str(len(body))}) + body.encode()


def test_429_and_503_are_retried_then_answered_and_silence_times_out(ctx) -> None:
    def respond(conn, n):
        if n == 0:
            conn.sendall(http_head("429 Too Many Requests", {"Retry-After": "0", "Content-Length": "0"}))
        elif n == 1:
            conn.sendall(http_head("503 Service Unavailable", {"Content-Length": "0"}))
        else:
            conn.sendall(_completion("The boat left at dawn."))

    handlers = SummarizeHandlers(ctx)
    with scripted_server(respond) as (url, seen):
        use_backends(ctx, _registry(f"busy={url}"))
        summary, _, notes = handlers.summarize_text("The sea was calm. The boat left at dawn.", "abstractive",
                                                    "remote:busy/m", 3, 0, 16, "")
    assert summary == "The boat left at dawn." and len(seen) == 3
    assert Msg.of("summarize.written_by", model="remote:busy/m") in notes

    def silent(conn, _n):
        time.sleep(2)

    with scripted_server(silent) as (url, _):
        use_backends(ctx, _registry(f"slow={url}", read_timeout_s=0.5))
        with pytest.raises(ModelLoadError) as info:
            ExtractHandlers(ctx).fields(TEXT, "person", "remote:slow/m", lang="en")
    assert info.value.key == "engines.error.remote_timeout"


def test_a_failing_batch_carries_the_rows_done_before_it(ctx) -> None:
    """When the endpoint fails mid-way, the leading rows answered travel with the error (for the batch to keep)."""
    def respond(conn, n):
        if n < 3:
            conn.sendall(_completion('{"person": "Ada Lind", "city": "Oslo"}'))
        # later connections are closed without an answer: the server died

    texts = [f"Ada Lind moved to Oslo in {1990 + i}." for i in range(8)]
    with scripted_server(respond) as (url, _):
        use_backends(ctx, _registry(f"flaky={url}", max_in_flight=2))
        spec = SummarizeHandlers(ctx).batch_spec("abstractive", "remote:flaky/m", 3, 0, 16)
        with pytest.raises(ModelLoadError) as info:
            spec.process(texts)
    assert info.value.key == "engines.error.stream_truncated"
    done = partial_results(info.value)
    assert 1 <= len(done) <= 3 and all(row["model_summary"].startswith('{"person"') for row in done)
    with scripted_server(respond) as (url, _):
        use_backends(ctx, _registry(f"flaky={url}", max_in_flight=2))
        rows = ExtractRows(ctx.manager, ctx.limits, "fields", "remote:flaky/m", "person, city", ctx=ctx)
        with pytest.raises(ModelLoadError) as info:
            rows.process(["", *texts])
    done = partial_results(info.value)
    assert 2 <= len(done) <= 4 and done[0]["person"] == "" and "empty" in done[0]["problems"].lower()
    assert all(row["person"] == "Ada Lind" and row["city"] == "Oslo" for row in done[1:])


# ---- Attention ------------------------------------------------------------------------------------------------
def test_attention_refuses_a_remote_model_and_names_the_local_one(ctx, llama) -> None:
    use_backends(ctx, _registry(f"lcp={llama['url']}|{KEY}"))
    handlers = AttentionHandlers(ctx)
    with pytest.raises(InputError) as info:
        handlers.extract(_ref(llama), "The cat sat on the mat.")
    assert info.value.key == "engines.error.remote_no_internals_local"
    assert info.value.params["local"] == "smollm2-135m-instruct"
    assert '"smollm2-135m-instruct"' in info.value.render("en") and "cannot be inspected" in info.value.render("en")
    with pytest.raises(InputError) as info:
        handlers.positions("remote:lcp/some-other-model")
    assert info.value.key == "engines.error.remote_no_internals"


# ---- the tabs in a browser ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tasks_app(tmp_path_factory, shared_cache_dir: Path, llama):
    """The Summarize and Extract tabs in one Gradio app whose backends list the llama.cpp server (probed)."""
    import gradio as gr

    from components.extract import build_extract_tab
    from components.summarize import build_summarize_tab

    ctx = AppContext.create(AppConfig(data_dir=tmp_path_factory.mktemp("ui"), cache_dir=shared_cache_dir))
    use_backends(ctx, _registry(f"lcp={llama['url']}|{KEY}")).probe("lcp")
    with gr.Blocks() as demo:
        with gr.Tab("Summarize"):
            build_summarize_tab(ctx)
        with gr.Tab("Extract"):
            build_extract_tab(ctx)
    with launched(demo) as url:
        yield {"url": url, "ctx": ctx}


@pytest.mark.browser
def test_remote_models_in_the_summarize_and_extract_pickers(browser, tasks_app, llama, artifacts_dir) -> None:
    from playwright.sync_api import expect

    option = f"{llama['model']} (lcp)"
    context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(tasks_app["url"], wait_until="load")
        page.get_by_role("tab", name="Summarize").click()
        engine = page.locator("#summarize-engine")
        expect(engine).to_be_hidden()  # extractive: no LM
        page.get_by_role("radio", name=re.compile("^Abstractive")).check()
        expect(engine).to_be_visible(timeout=10_000)  # the default instruct LM is local
        picker = page.locator("#summarize-model input")
        picker.click()
        page.get_by_role("option", name=option).click()
        expect(engine).to_be_hidden(timeout=10_000)  # a remote model runs on its server
        page.locator("#summarize-text textarea").fill("The harbour froze overnight. Ferries stayed in port and "
                                                      "the town council opened the old bridge to traffic.")
        page.locator("#summarize-run").click()
        expect(page.locator("#summarize-note")).to_contain_text(f"Written by remote:lcp/{llama['model']}",
                                                                timeout=180_000)
        assert page.locator("#summarize-output textarea").input_value().strip()
        page.screenshot(path=str(artifacts_dir / "summarize-remote.png"), full_page=True)

        page.get_by_role("tab", name="Extract").click()
        page.get_by_role("tab", name="Fields").click()
        fields_picker = page.locator("#extract-fields-model input")
        fields_picker.click()
        page.get_by_role("option", name=option).click()
        expect(page.locator("#extract-fields-engine")).to_be_hidden(timeout=10_000)
        page.locator("#extract-fields-run").click()
        expect(page.locator("#extract-fields-table")).to_contain_text("order_id", timeout=180_000)
        expect(page.locator("#extract-fields-errors")).to_have_text("")
        page.screenshot(path=str(artifacts_dir / "extract-fields-remote.png"), full_page=True)
    finally:
        context.close()
