"""Fine-tune tab over the API (finetune, runs, stop, busy, bad files) and in a browser."""

from __future__ import annotations

import json
import re
import time

import pytest
from gradio_client import Client, handle_file
from playwright.sync_api import expect

from tests.conftest import open_tab

WORDS_POS = ["great", "wonderful", "brilliant", "lovely", "superb", "fantastic"]
WORDS_NEG = ["terrible", "awful", "boring", "dreadful", "horrible", "dull"]


def write_csv(folder, rows: int = 12) -> str:
    lines = ["text,label"]
    for i in range(rows):
        lines.append(f"a {WORDS_POS[i % 6]} film number {i},pos")
        lines.append(f"a {WORDS_NEG[i % 6]} film number {i},neg")
    path = folder / "reviews.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def spec(tiny_root, **settings) -> str:
    return json.dumps({"task": "classification", "base_model": str(tiny_root / "tiny-bert"), "name": "api run",
                       "preset": "quick", "settings": {"batch_size": 4, "max_length": 16, **settings}})


def test_finetune_endpoint_streams_progress_and_lists_the_run(app_server, tiny_root, tmp_path) -> None:
    client = Client(app_server["url"], verbose=False)
    job = client.submit(handle_file(write_csv(tmp_path)), spec(tiny_root), api_name="/finetune")
    updates = list(job)
    run_id, progress, *_ = job.result()
    assert len(updates) >= 2 and run_id
    assert "data-status='complete'" in progress
    runs = client.predict(api_name="/runs")
    record = next(r for r in runs if r["id"] == run_id)
    assert record["status"] == "complete" and record["reference"] == f"run:{run_id}"
    assert record["labels"] == ["neg", "pos"] and 0 <= record["metrics"]["accuracy"] <= 1


def test_bad_file_gives_a_clean_error(app_server, tiny_root, tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02 binary")
    client = Client(app_server["url"], verbose=False)
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(bad)), spec(tiny_root), api_name="/finetune")
    assert "binary" in str(info.value) and "Traceback" not in str(info.value)
    with pytest.raises(Exception) as info:
        client.predict(handle_file(write_csv(tmp_path)), '{"settings": {"lora_r": 0}}', api_name="/finetune")
    assert "LoRA rank" in str(info.value)


def test_second_user_is_told_training_is_busy_and_stop_keeps_the_run(app_server, tiny_root, tmp_path) -> None:
    first, second = Client(app_server["url"], verbose=False), Client(app_server["url"], verbose=False)
    # a Resume call first (here refused: no such run) registers every event of the training group with the queue,
    # as an earlier user's Resume does; the second start must still be told "busy", not wait in the queue
    with pytest.raises(Exception, match="run"):
        first.predict("no-such-run", api_name="/resume_finetune")
    csv_path = write_csv(tmp_path, rows=30)
    job = first.submit(handle_file(csv_path), spec(tiny_root, epochs=100, eval_every=5, patience=0, batch_size=1),
                       api_name="/finetune")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("data-status='running'" in out[1] for out in job.outputs()):
        time.sleep(0.2)
    assert any("data-status='running'" in out[1] for out in job.outputs()), "training did not start"
    with pytest.raises(Exception) as info:
        second.predict(handle_file(csv_path), spec(tiny_root), api_name="/finetune")
    assert "training is busy" in str(info.value)
    run_id, progress, *_ = first.predict(api_name="/stop_finetune")
    assert "data-status='stopped'" in progress
    record = next(r for r in first.predict(api_name="/runs") if r["id"] == run_id)
    assert record["status"] == "stopped" and "val_loss" in record["metrics"]


@pytest.mark.browser
def test_finetune_tab_trains_and_lists_the_run(page, tiny_root, tmp_path, artifacts_dir) -> None:
    open_tab(page, "Fine-tune")
    page.locator("#ft-file input[type=file]").set_input_files(write_csv(tmp_path))
    report = page.locator("#ft-report")
    report.get_by_text("rows will be used").wait_for(timeout=30_000)
    assert "24" in report.inner_text() and "2 labels" in report.inner_text()
    base = page.locator("#ft-base input")
    base.fill(str(tiny_root / "tiny-bert"))
    base.press("Enter")
    page.locator("#ft-settings").get_by_role("button").first.click()
    page.get_by_role("radio", name="Quick").check()
    page.locator("#ft-start").click()
    page.locator("#ft-progress-text[data-status=complete]").wait_for(timeout=180_000)
    page.locator("#ft-results").get_by_text("Accuracy").wait_for(timeout=30_000)
    assert page.locator("#ft-loss .js-plotly-plot").count() == 1
    assert page.locator("#ft-loss .scatterlayer .trace").count() >= 2  # train and validation curves
    run_id = page.locator("#ft-run-id textarea, #ft-run-id input").first.input_value()
    assert run_id
    expect(page.locator("#ft-runs")).to_contain_text(run_id, timeout=10_000)
    expect(page.locator("#ft-runs")).to_contain_text("complete")
    assert "saved (complete)" in page.locator("#ft-log textarea").input_value()
    shots = artifacts_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "finetune.png"), full_page=True)


def test_resume_finetune_continues_a_stopped_run_to_the_end(app_server, tiny_root, tmp_path) -> None:
    client = Client(app_server["url"], verbose=False)
    job = client.submit(handle_file(write_csv(tmp_path, rows=30)),
                        spec(tiny_root, epochs=5, eval_every=4, patience=0), api_name="/finetune")

    def step() -> int:
        found = [re.search(r"step (\d+)/", out[1]) for out in job.outputs()]
        return max([int(m.group(1)) for m in found if m] or [0])

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and step() < 3:
        time.sleep(0.2)
    run_id, progress, *_ = client.predict(api_name="/stop_finetune")
    assert "data-status='stopped'" in progress
    record = next(r for r in client.predict(api_name="/runs") if r["id"] == run_id)
    assert record["status"] == "stopped" and record["resumable"]
    with pytest.raises(Exception) as info:
        client.predict("no-such-run", api_name="/resume_finetune")
    assert "No fine-tuning run named" in str(info.value)
    resumed = client.submit(run_id, api_name="/resume_finetune")
    updates = list(resumed)
    same_id, progress, _, log, *_ = resumed.result()
    assert same_id == run_id and len(updates) >= 2 and "data-status='complete'" in progress
    assert "Resumed from the checkpoint at step" in log
    record = next(r for r in client.predict(api_name="/runs") if r["id"] == run_id)
    assert record["status"] == "complete" and record["metrics"]["steps_done"] == record["metrics"]["total_steps"]
