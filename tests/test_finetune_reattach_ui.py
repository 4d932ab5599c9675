"""A page loaded while a run trains (a reload, another tab) follows its live progress, stops it, and resumes it
from its checkpoint with the Resume button; the hardware settings are on the tab."""

from __future__ import annotations

import json
import re
import time

import pytest
from gradio_client import Client, handle_file
from playwright.sync_api import expect

from tests.conftest import open_tab
from tests.test_finetune_ui import write_csv


def step_of(page) -> int:
    text = page.locator("#ft-progress-text").inner_text()
    found = re.search(r"(\d+)\s*/\s*\d+", text)
    return int(found.group(1)) if found else -1


@pytest.mark.browser
def test_a_loaded_page_follows_stops_and_resumes_the_running_run(page, app_server, tiny_root, tmp_path) -> None:
    client = Client(app_server["url"], verbose=False)
    spec = json.dumps({"task": "classification", "base_model": str(tiny_root / "tiny-bert"), "name": "followed",
                       "settings": {"epochs": 100, "batch_size": 4, "max_length": 16, "eval_every": 5,
                                    "patience": 0},
                       "hardware": {"device": "cpu", "processes": 1}, "control": {"checkpoint_every": 3}})
    job = client.submit(handle_file(write_csv(tmp_path, rows=30)), spec, api_name="/finetune")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not any("data-status='running'" in out[1] for out in job.outputs()):
        time.sleep(0.3)
    try:
        page.reload()
        page.locator("#app-title").wait_for(timeout=60_000)
        open_tab(page, "Fine-tune")
        page.locator("#ft-progress-text[data-status=running]").wait_for(timeout=30_000)
        first = step_of(page)
        expect(page.locator("#ft-run-id textarea, #ft-run-id input").first).not_to_have_value("", timeout=10_000)
        deadline = time.monotonic() + 60
        while step_of(page) <= first and time.monotonic() < deadline:
            time.sleep(0.5)
        assert step_of(page) > first, "the reloaded page shows no live progress"
        assert page.locator("#ft-loss .js-plotly-plot").count() == 1
        page.locator("#ft-stop").click()
        page.locator("#ft-progress-text[data-status=stopped]").wait_for(timeout=120_000)
        stopped_at = step_of(page)
        expect(page.locator("#ft-log textarea")).to_have_value(re.compile("saved"), timeout=10_000)
    finally:
        client.predict(api_name="/stop_finetune")
    run_id = page.locator("#ft-run-id textarea, #ft-run-id input").first.input_value()
    expect(page.locator("#ft-run-pick input")).to_have_value(run_id, timeout=15_000)
    expect(page.locator("#ft-runs")).to_contain_text("resumable")

    page.locator("#ft-resume").click()
    page.locator("#ft-progress-text[data-status=running]").wait_for(timeout=120_000)
    expect(page.locator("#ft-log textarea")).to_have_value(re.compile("Resumed from the checkpoint at step"),
                                                            timeout=60_000)
    page.locator("#ft-stop").click()
    page.locator("#ft-progress-text[data-status=stopped]").wait_for(timeout=120_000)
    assert step_of(page) >= stopped_at
    record = next(r for r in client.predict(api_name="/runs") if r["id"] == run_id)
    assert record["status"] == "stopped"


@pytest.mark.browser
def test_hardware_settings_are_on_the_tab(page) -> None:
    open_tab(page, "Fine-tune")
    page.locator("#ft-hardware").get_by_role("button").first.click()
    expect(page.locator("#ft-device input")).to_have_value(re.compile("auto"))
    expect(page.locator("#ft-strategy input")).to_have_value("Data parallel (DDP)")
    expect(page.locator("#ft-no-deepspeed")).to_contain_text("pip install deepspeed")
