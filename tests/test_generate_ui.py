"""Generate tab over the API (gradio_client) and in a real browser."""

from __future__ import annotations

import pytest
from gradio_client import Client
from playwright.sync_api import expect

from tests.conftest import open_tab

GREEDY = {"mode": "completion", "precision": "float32", "max_new_tokens": 8}


@pytest.fixture(scope="module")
def client(app_server) -> Client:
    return Client(app_server["url"], verbose=False)


def test_api_generate_returns_text(client, tiny_root) -> None:
    tiny = str(tiny_root / "tiny-llama")
    text = client.predict("Once upon a time", tiny, GREEDY, "", api_name="/generate")
    assert isinstance(text, str) and text
    details = client.predict("Once upon a time", tiny, GREEDY, "", api_name="/generate_details")
    assert details["text"] == text  # greedy: same input, same output
    assert details["stats"]["new_tokens"] == len(details["tokens"]) <= 8
    assert all(0 < tok["prob"] <= 1 and len(tok["top"]) == 5 for tok in details["tokens"])
    chunks = list(client.submit("Once upon a time", tiny, GREEDY, "", api_name="/generate_stream"))
    assert chunks and chunks[-1] == text
    rows = client.predict("Once upon a time", tiny, GREEDY, 5, api_name="/next_tokens")
    assert len(rows) == 5 and rows[0]["prob"] >= rows[-1]["prob"]


def test_api_rejects_bad_settings_with_one_clear_sentence(client) -> None:
    with pytest.raises(Exception) as info:
        client.predict("hi", "smollm2-135m-instruct", {"bogus": 1}, "", api_name="/generate")
    assert "Unknown generation setting" in str(info.value) and "Traceback" not in str(info.value)


@pytest.mark.browser
def test_generate_tab_streams_an_answer_with_token_view(page, artifacts_dir) -> None:
    open_tab(page, "Generate")
    output = page.locator("#generate-output")
    expect(output).to_be_hidden()  # chat mode: the answer shows in the chat and the token view, not three times
    page.get_by_label("Precision").first.click()
    page.get_by_role("option", name="float32", exact=True).click()
    page.locator("#generate-prompt textarea").fill("What is the capital of France?")
    page.locator("#generate-run").click()
    page.locator("#generate-stats").get_by_text("eos").wait_for(timeout=120_000)  # the final snapshot
    assert page.locator("#generate-chat").get_by_text("Paris").count() >= 1  # the chat history shows the turn
    expect(output).to_be_hidden()
    assert page.locator("#generate-prompt textarea").input_value() == ""  # chat: the message moved to the chat
    tokens = page.locator("#generate-tokens .lmw-tok")
    assert tokens.count() >= 3
    first = tokens.first
    assert "top-5:" in (first.get_attribute("title") or "")
    assert 0 < float(first.get_attribute("data-prob")) <= 1
    # Keyboard focus shows the alternatives, as hover does.
    alternatives = first.locator(".lmw-alt")
    expect(alternatives).to_be_hidden()
    first.focus()
    expect(alternatives).to_be_visible()
    assert "top-5:" in alternatives.inner_text()
    shots = artifacts_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "generate.png"), full_page=True)

    # Stop ends a long completion at once; the stats say so, with a speed and a duration, and the text stops growing.
    page.get_by_label("completion").check()
    expect(output).to_be_visible()
    page.locator("#generate-prompt textarea").fill("Once upon a time")
    previous = output.locator("textarea").input_value()  # the chat's answer may still be in the (hidden) box
    page.locator("#generate-run").click()
    page.wait_for_function(
        "(old) => { const v = document.querySelector('#generate-output textarea').value;"
        " return v !== old && v.length > 20; }", arg=previous, timeout=120_000
    )
    page.locator("#generate-stop").click()
    stats = page.locator("#generate-stats")
    stats.get_by_text("stopped").wait_for(timeout=30_000)  # generous: CI shares 2 cores with the app
    before = output.locator("textarea").input_value()
    page.wait_for_timeout(1500)
    assert output.locator("textarea").input_value() == before and len(before) < 400
    text = stats.inner_text()
    assert "tokens per second" in text and "null" not in text


@pytest.mark.browser
def test_failed_generation_shows_the_error_line_and_keeps_the_prompt(page) -> None:
    open_tab(page, "Generate")
    picker = page.locator("#generate-model input")
    picker.fill("no-such-model-anywhere")
    picker.press("Enter")
    prompt = page.locator("#generate-prompt textarea")
    prompt.fill("Keep this message, please.")
    page.locator("#generate-run").click()
    line = page.locator("#generate-errors")
    expect(line).to_contain_text("no-such-model-anywhere", timeout=60_000)
    page.wait_for_timeout(6000)  # after the toast has gone, the line still says what went wrong
    expect(line).to_contain_text("no-such-model-anywhere")
    assert prompt.input_value() == "Keep this message, please."
    # The compare description shows the run reference literally (markdown no longer eats "<id>").
    page.get_by_text("Compare two models or two settings").click()
    expect(page.get_by_text("run:<id>").first).to_be_visible()


@pytest.mark.browser
def test_generate_tab_in_chinese_translates_options_and_notes(browser, app_server) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(app_server["url"], wait_until="load")
        page.get_by_role("tab", name="生成").click()
        for label in ("自动", "对话", "补全"):
            expect(page.get_by_role("radio", name=label, exact=True)).to_be_visible()
        expect(page.get_by_role("radio", name="completion")).to_have_count(0)
        expect(page.locator("#generate-examples-note")).to_contain_text("以英语为主")
        expect(page.locator("#generate-preset-info")).to_contain_text("温度 0.8")
    finally:
        context.close()


@pytest.mark.browser
def test_mode_switch_resets_sampling_knobs_until_the_user_changes_them(page) -> None:
    open_tab(page, "Generate")
    page.get_by_text("Settings: system prompt").click()
    sample = page.get_by_label("Sample", exact=True)
    expect(sample).to_be_checked()  # auto/chat: sampling with a repetition penalty
    page.get_by_label("completion", exact=True).check()
    expect(sample).not_to_be_checked()  # completion: greedy
    expect(page.locator("#generate-output")).to_be_visible()
    page.get_by_label("chat", exact=True).check()
    expect(sample).to_be_checked()
    expect(page.locator("#generate-output")).to_be_hidden()
    sample.uncheck()  # the user's own choice is kept from now on
    page.get_by_label("completion", exact=True).check()
    page.get_by_label("chat", exact=True).check()
    page.wait_for_timeout(500)
    expect(sample).not_to_be_checked()
