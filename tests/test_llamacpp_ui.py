"""The Generate tab in a real browser: auto answers with llama.cpp on the embedded model and the stats panel says
so; choosing transformers in the Engine dropdown answers with transformers."""

from __future__ import annotations

import re

import pytest
from gradio_client import Client
from playwright.sync_api import expect

from tests.conftest import open_tab


def test_api_details_name_the_engine(app_server) -> None:
    client = Client(app_server["url"], verbose=False)
    settings = {"mode": "completion", "max_new_tokens": 6, "do_sample": False}
    fast = client.predict("The capital of France is", "smollm2-135m-instruct", settings, "",
                          api_name="/generate_details")
    assert fast["stats"]["engine"] == "llama.cpp" and fast["stats"]["precision"] == "Q8_0"
    assert "Paris" in fast["text"] and all(len(tok["top"]) == 5 for tok in fast["tokens"])
    slow = client.predict("The capital of France is", "smollm2-135m-instruct",
                          {**settings, "engine": "transformers", "precision": "float32"}, "",
                          api_name="/generate_details")
    assert slow["stats"]["engine"] == "transformers" and slow["stats"]["precision"] == "float32"


def _ask(page, question: str, answered_by: str) -> None:
    page.locator("#generate-prompt textarea").fill(question)
    page.locator("#generate-run").click()
    stats = page.locator("#generate-stats")
    stats.get_by_text(answered_by).wait_for(timeout=180_000)
    stats.get_by_text(re.compile(r"\(eos\)|max new tokens reached")).wait_for(timeout=180_000)  # the final snapshot


def _choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).first.click()
    page.get_by_role("option", name=option, exact=True).click()


@pytest.mark.browser
def test_stats_panel_names_the_engine(page) -> None:
    open_tab(page, "Generate")
    stats = page.locator("#generate-stats")
    _ask(page, "What is the capital of France?", "llama.cpp")  # auto on a CPU: the GGUF model runs in llama.cpp
    expect(stats.get_by_text("Engine")).to_be_visible()
    expect(stats.get_by_text("Q8_0")).to_be_visible()  # its precision: the file's quantisation
    _choose(page, "Engine", "transformers")
    _choose(page, "Precision", "float32")
    _ask(page, "What is the capital of Italy?", "transformers")
    expect(stats.get_by_text("llama.cpp")).to_have_count(0)
    expect(stats.get_by_text("float32")).to_be_visible()
