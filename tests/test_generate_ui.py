"""Generate tab over the API (gradio_client) and in a real browser."""

from __future__ import annotations

import pytest
from gradio_client import Client

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
    page.get_by_label("Precision").first.click()
    page.get_by_role("option", name="float32", exact=True).click()
    page.locator("#generate-prompt textarea").fill("What is the capital of France?")
    page.locator("#generate-run").click()
    output = page.locator("#generate-output textarea")
    page.wait_for_function(
        "() => document.querySelector('#generate-output textarea').value.length > 0", timeout=120_000
    )
    page.locator("#generate-stats").get_by_text("eos").wait_for(timeout=120_000)  # the final snapshot
    assert "Paris" in output.input_value()
    tokens = page.locator("#generate-tokens .lmw-tok")
    assert tokens.count() >= 3
    first = tokens.first
    assert "top-5:" in (first.get_attribute("title") or "")
    assert 0 < float(first.get_attribute("data-prob")) <= 1
    assert page.locator("#generate-chat").get_by_text("Paris").count() >= 1  # the chat history shows the turn
    shots = artifacts_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "generate.png"), full_page=True)

    # Stop ends a long completion at once; the stats say so and the text stops growing.
    page.get_by_label("completion").check()
    page.locator("#generate-prompt textarea").fill("Once upon a time")
    page.locator("#generate-run").click()
    page.wait_for_function(
        "() => document.querySelector('#generate-output textarea').value.length > 20", timeout=120_000
    )
    page.locator("#generate-stop").click()
    page.locator("#generate-stats").get_by_text("stopped").wait_for(timeout=10_000)
    before = output.input_value()
    page.wait_for_timeout(1500)
    assert output.input_value() == before and len(before) < 400
