"""The app starts, serves its page before any model is loaded, and the Models tab works in a browser."""

from __future__ import annotations

import pytest
from gradio_client import Client

from tests.conftest import open_tab


def test_app_serves_its_page_before_any_model_is_loaded(tmp_path, shared_cache_dir) -> None:
    from tests.app_server import running_app

    with running_app(tmp_path / "data", shared_cache_dir) as server:
        client = Client(server["url"], verbose=False)
        status, rows = client.predict(None, api_name="/unload_model")
        assert status == "Unloaded 0 model(s)."  # nothing was loaded by starting the app
        assert rows["data"] == []
        print(f"HTTP 200 on / after {server['startup_s']:.1f} s")


def test_unknown_hub_id_gives_one_clear_sentence_over_the_api(app_server) -> None:
    client = Client(app_server["url"], verbose=False)
    with pytest.raises(Exception) as info:
        client.predict("nobody-here/no-such-model", "auto", "auto", api_name="/load_model")
    message = str(info.value)
    assert "Hugging Face Hub" in message
    assert "Traceback" not in message


@pytest.mark.browser
def test_models_tab_loads_a_model_in_the_browser(page, artifacts_dir) -> None:
    open_tab(page, "Models")
    page.get_by_role("button", name="Load", exact=True).click()
    status = page.locator("#models-status")
    status.get_by_text("Loaded").wait_for(timeout=60_000)
    assert "smollm2-135m-instruct" in status.inner_text()
    shots = artifacts_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "models.png"), full_page=True)


def _fresh_page(browser, url: str, locale: str = "en-US"):
    context = browser.new_context(locale=locale, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.locator("#app-title").wait_for(timeout=60_000)
    return context, page


@pytest.mark.browser
def test_models_in_memory_are_listed_when_the_page_loads(browser, app_server, tiny_root) -> None:
    """#18.9: a model loaded elsewhere (here over the API) is in the table of a page opened afterwards."""
    client = Client(app_server["url"], verbose=False)
    ref = str(tiny_root / "tiny-gpt2")
    client.predict(ref, "auto", "auto", api_name="/load_model")
    context, page = _fresh_page(browser, app_server["url"])
    try:
        page.get_by_role("tab", name="Models").click()
        page.wait_for_function(
            "() => document.querySelector('#models-loaded').innerText.includes('tiny-gpt2')", timeout=30_000)
        # and it goes away after an unload elsewhere: the tab refreshes when selected again
        client.predict(ref, api_name="/unload_model")
        page.get_by_role("tab", name="Generate").click()
        page.get_by_role("tab", name="Models").click()
        page.wait_for_function(
            "() => !document.querySelector('#models-loaded').innerText.includes('tiny-gpt2')", timeout=30_000)
    finally:
        context.close()


def test_auto_load_reuses_the_copy_in_memory_over_the_api(app_server, tiny_root) -> None:
    """#18.9: a Load with precision 'auto' adds no second copy of a model already in memory in another dtype."""
    client = Client(app_server["url"], verbose=False)
    ref = str(tiny_root / "tiny-llama")
    client.predict(ref, api_name="/unload_model")  # the shared app may hold it from earlier tests (e.g. float32)
    try:
        _, rows, _ = client.predict(ref, "causal-lm", "bfloat16", api_name="/load_model")
        before = [row for row in rows["data"] if "tiny-llama" in str(row[0])]
        status, rows, _ = client.predict(ref, "auto", "auto", api_name="/load_model")
        after = [row for row in rows["data"] if "tiny-llama" in str(row[0])]
        assert len(before) == len(after) == 1 and "bfloat16" in status
    finally:
        client.predict(ref, api_name="/unload_model")


@pytest.mark.browser
def test_a_failed_load_shows_one_toast_then_the_error_line_and_no_error_badges(page) -> None:
    """#18.3: one toast at most, the sentence stays in the error line after the toast, outputs keep their look."""
    open_tab(page, "Models")
    box = page.locator("#models-picker input")
    box.fill("nobody-here/no-such-model")
    box.press("Enter")
    page.get_by_role("button", name="Load", exact=True).click()
    toast = page.locator(".toast-body")
    toast.first.wait_for(timeout=60_000)
    most = 0
    for _ in range(6):  # the toast and any follow-up events have time to appear
        most = max(most, toast.count())
        page.wait_for_timeout(300)
    assert most == 1
    assert "Hugging Face Hub" in toast.first.inner_text()
    page.locator(".toast-close").first.click()
    toast.first.wait_for(state="detached", timeout=15_000)
    line = page.locator("#models-errors")
    assert "nobody-here/no-such-model" in line.inner_text() and "Hugging Face Hub" in line.inner_text()
    badges = page.locator("[data-testid=status-tracker] span.error")
    assert all(not badges.nth(i).is_visible() for i in range(badges.count()))
    assert box.input_value() == "nobody-here/no-such-model"  # the input keeps its content
    assert page.locator("#models-loaded").is_visible() and page.locator("#models-embedded").is_visible()
    # the next success clears the line
    box.fill("minilm-l6")
    box.press("Enter")
    page.get_by_role("button", name="Load", exact=True).click()
    page.locator("#models-status").get_by_text("Loaded").wait_for(timeout=120_000)
    page.wait_for_function("() => !document.querySelector('#models-errors').innerText.trim()", timeout=10_000)


@pytest.mark.browser
def test_warmup_banner_shows_the_preparation_and_a_load_meanwhile_waits_visibly(
    browser, tmp_path, shared_cache_dir
) -> None:
    """#18.11: on a fresh install the page is served at once, a banner says what is being prepared (SmolLM2 is
    de-quantised into the cache), a Load meanwhile shows that it waits for it, and the banner goes when done."""
    import shutil

    from pipelines.models.embedded import CACHE_MARKER
    from tests.app_server import running_app

    cache = tmp_path / "fresh-cache"
    cache.mkdir()
    measured = shared_cache_dir / "generation_precision.json"
    if measured.exists():  # only the de-quantisation is left to do: the test stays short
        shutil.copy(measured, cache / measured.name)
    with running_app(tmp_path / "data", cache) as server:
        context, page = _fresh_page(browser, server["url"])
        try:
            banner = page.locator("#warmup-banner")
            banner.get_by_text("smollm2-135m-instruct").wait_for(timeout=60_000)
            assert "GGUF" in banner.inner_text()
            page.get_by_role("tab", name="Models").click()
            box = page.locator("#models-picker input")
            box.fill("smollm2-135m-instruct")
            box.press("Enter")
            page.get_by_role("button", name="Load", exact=True).click()
            page.get_by_text("Waiting for the start-up preparation").first.wait_for(timeout=30_000)
            banner.wait_for(state="hidden", timeout=600_000)
            page.locator("#models-status").get_by_text("Loaded").wait_for(timeout=120_000)
        finally:
            context.close()
    assert (cache / "smollm2-135m-instruct" / CACHE_MARKER).exists()


def test_one_failure_makes_one_toast_however_the_handler_is_wrapped_or_chained() -> None:
    """#18.3b: wrapping twice converts once; the same error again from a chained event is not toasted again."""
    import gradio as gr

    from components.common import ERROR_VALUE, ui_errors
    from pipelines.errors import InputError
    from pipelines.sessions import API_SESSION, Sessions

    sessions, calls = Sessions(), []

    def failing() -> None:
        calls.append(1)
        raise InputError("models.error.choose_first")

    once = ui_errors(failing, sessions=sessions)
    assert ui_errors(once, sessions=sessions) is once  # a second guard adds nothing
    twice = ui_errors(once)  # an outer plain @ui_errors passes the inner error through unchanged
    with pytest.raises(gr.Error) as first:
        twice()
    assert first.value.visible and str(first.value.message) == "Choose a model first."
    assert sessions.get_value(API_SESSION, ERROR_VALUE) == "Choose a model first."
    with pytest.raises(gr.Error) as again:  # e.g. a .then step or an example's follow-up failing the same way
        once()
    assert not again.value.visible and str(again.value.message) == "Choose a model first."
    assert len(calls) == 2


@pytest.mark.browser
def test_a_failure_in_the_chinese_ui_is_chinese_in_the_toast_and_the_error_line(browser, app_server) -> None:
    """#18.3/#18.6: the toast's title (Gradio always writes its type, "Error") and the message are Chinese."""
    context, page = _fresh_page(browser, app_server["url"], locale="zh-CN")
    try:
        page.get_by_role("tab", name="模型", exact=True).click()
        box = page.locator("#models-picker input")
        box.fill("/nope/x")
        box.press("Enter")
        page.get_by_role("button", name="加载", exact=True).click()
        title = page.locator(".toast-title").first
        title.wait_for(timeout=60_000)
        shown = title.evaluate("e => [getComputedStyle(e, '::before').content, getComputedStyle(e).fontSize]")
        assert shown == ['"错误"', "0px"]  # the English type word is not shown; the Chinese one is
        assert "不存在" in page.locator(".toast-body").first.inner_text()
        page.locator("#models-errors").get_by_text("不存在").wait_for(timeout=10_000)
    finally:
        context.close()


def test_the_queue_follows_the_configuration(config) -> None:
    """LMW_QUEUE_SIZE caps waiting requests; one event per concurrency group runs at a time."""
    import app
    from pipelines.context import AppContext

    config.queue_size = 7
    demo = app.build_app(AppContext.create(config))
    assert demo._queue.max_size == 7 and demo._queue.default_concurrency_limit == 1
