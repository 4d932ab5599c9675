"""The runs panel in a browser: filled at page load with the newest run selected, actions without a selection
answer in the error line, and the Fine-tune tab in Chinese (headers, states, status line) is translated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from playwright.sync_api import expect

from tests.conftest import open_tab

ROWS = [("a great wonderful film", "pos"), ("a terrible boring film", "neg"), ("brilliant and lovely", "pos"),
        ("awful and dull", "neg"), ("superb fun story", "pos"), ("dreadful sad mess", "neg")] * 3


def train_run(url: str, tiny_root: Path, folder: Path) -> str:
    path = folder / "reviews.csv"
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in ROWS), encoding="utf-8")
    spec = json.dumps({"task": "classification", "base_model": str(tiny_root / "tiny-bert"), "name": "ui runs",
                       "settings": {"epochs": 1, "batch_size": 8, "max_length": 16}})
    run_id, progress, *_ = Client(url, verbose=False).predict(handle_file(str(path)), spec, api_name="/finetune")
    assert "data-status='complete'" in progress
    return run_id


def delete_all_runs(url: str) -> None:
    client = Client(url, verbose=False)
    for run in client.predict(api_name="/runs"):
        client.predict(run["id"], api_name="/delete_run")


@pytest.mark.browser
def test_runs_show_after_reload_and_actions_need_a_selection(page, app_server, tiny_root, tmp_path) -> None:
    delete_all_runs(app_server["url"])
    page.reload()
    open_tab(page, "Fine-tune")
    page.locator("#ft-download").click()
    expect(page.locator("#ft-run-errors")).to_contain_text("Pick a run first", timeout=15_000)
    expect(page.locator("#ft-run-errors")).not_to_contain_text("None")

    run_id = train_run(app_server["url"], tiny_root, tmp_path)
    page.reload()
    page.locator("#app-title").wait_for(timeout=60_000)
    open_tab(page, "Fine-tune")
    expect(page.locator("#ft-runs")).to_contain_text(run_id, timeout=15_000)  # no Refresh needed
    expect(page.locator("#ft-run-pick input")).to_have_value(run_id)  # the newest run is selected
    expect(page.locator("#ft-progress")).to_contain_text("No training yet.")

    page.locator("#ft-delete").click()
    expect(page.locator("#ft-action")).to_contain_text(f"Deleted run {run_id}", timeout=15_000)
    expect(page.locator("#ft-runs")).not_to_contain_text(run_id)
    expect(page.locator("#ft-run-errors")).to_have_text("")


@pytest.mark.browser
def test_finetune_tab_in_chinese(browser, app_server, tiny_root, tmp_path, artifacts_dir) -> None:
    client = Client(app_server["url"], verbose=False)
    if not any(r["status"] == "complete" for r in client.predict(api_name="/runs")):
        train_run(app_server["url"], tiny_root, tmp_path)
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(app_server["url"], wait_until="load")
        page.locator("#app-title").wait_for(timeout=60_000)
        page.get_by_role("tab", name="微调").click()
        runs = page.locator("#ft-runs")
        expect(runs).to_contain_text("运行 ID", timeout=15_000)
        for word in ("基础模型", "状态", "创建时间", "指标", "已完成", "文本分类", "准确率"):
            expect(runs).to_contain_text(word)
        for english in ("run id", "base model", "complete", "classification", "acc "):
            expect(runs).not_to_contain_text(english)
        expect(page.locator("#ft-progress")).to_have_text("尚未开始训练。")
        # The examples table is shown whole: nothing scrolls sideways or is cut off.
        table = page.locator("#ft-examples table").first
        widths = table.evaluate("t => [t.scrollWidth, t.parentElement.clientWidth]")
        assert widths[0] <= widths[1] + 1, widths
        shots = artifacts_dir / "screenshots"
        shots.mkdir(exist_ok=True)
        page.screenshot(path=str(shots / "finetune-zh.png"), full_page=True)
    finally:
        context.close()


@pytest.mark.browser
def test_a_bad_upload_is_explained_next_to_the_data(page, tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(bytes(range(256)) * 4)
    open_tab(page, "Fine-tune")
    page.locator("#ft-file input[type=file]").set_input_files(str(bad))
    expect(page.locator("#ft-data-errors")).to_contain_text("binary", timeout=30_000)
    expect(page.locator("#ft-file")).to_contain_text("1024.0 B")  # the input keeps its content (bad.csv)
    good = tmp_path / "good.csv"
    good.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in ROWS), encoding="utf-8")
    page.locator("#ft-file").get_by_role("button", name="Clear").click()  # the failed file stays until cleared
    page.locator("#ft-file input[type=file]").set_input_files(str(good))
    page.locator("#ft-report").get_by_text("rows will be used").wait_for(timeout=30_000)
    expect(page.locator("#ft-data-errors")).to_have_text("")  # the next success clears the line
