"""The pre-flight panel in a browser (histogram and estimate before Start) and the /preflight and /compare_runs
endpoints of the served app."""

from __future__ import annotations

import json

import pytest
from gradio_client import Client, handle_file
from playwright.sync_api import expect

from tests.conftest import fill_kept, open_tab

WORDS_POS = ["great", "wonderful", "brilliant", "lovely", "superb", "fantastic"]
WORDS_NEG = ["terrible", "awful", "boring", "dreadful", "horrible", "dull"]


def write_csv(folder, rows: int = 12) -> str:
    lines = ["text,label"]
    for i in range(rows):
        lines.append(f"a {WORDS_POS[i % 6]} film number {i} " + "and so on " * (i % 4) + ",pos")
        lines.append(f"a {WORDS_NEG[i % 6]} film number {i},neg")
    path = folder / "preflight.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_histogram_and_estimate_appear_before_start(page, tiny_root, tmp_path, artifacts_dir) -> None:
    open_tab(page, "Fine-tune")
    base = page.locator("#ft-base input")
    base.fill(str(tiny_root / "tiny-bert"))
    base.press("Enter")
    page.locator("#ft-file input[type=file]").set_input_files(write_csv(tmp_path))
    page.locator("#ft-pf-plot .js-plotly-plot").wait_for(timeout=90_000)
    summary = page.locator("#ft-pf-summary")
    expect(summary).to_contain_text("24 rows", timeout=30_000)
    expect(summary).to_contain_text("Suggested max length")
    assert page.locator("#ft-pf-plot .scatterlayer .trace").count() == 2  # the max length and the suggestion
    expect(page.locator("#ft-pf-checks")).to_contain_text("Repeated rows: 0")
    estimate = page.locator("#ft-pf-estimate")
    expect(estimate).to_contain_text("Estimate", timeout=240_000)
    expect(estimate).to_contain_text("steps")
    expect(estimate).to_contain_text("Peak memory")
    assert page.locator("#ft-run-id textarea, #ft-run-id input").first.input_value() == ""  # Start not pressed
    shots = artifacts_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    page.locator("#ft-preflight").screenshot(path=str(shots / "preflight.png"))
    page.locator("#ft-pf-use").click()  # the suggested max length goes into the settings
    page.locator("#ft-settings").get_by_role("button").first.click()
    suggested = summary.inner_text().split("Suggested max length:")[1].split("(")[0].strip()
    field = page.locator("#ft-settings").get_by_label("Max length")
    expect(field).to_have_value(suggested, timeout=10_000)


def test_preflight_and_compare_runs_endpoints(app_server, tiny_root, tmp_path) -> None:
    client = Client(app_server["url"], verbose=False)
    spec = json.dumps({"task": "classification", "base_model": str(tiny_root / "tiny-bert"),
                       "settings": {"batch_size": 4, "max_length": 8}})
    report = client.predict(handle_file(write_csv(tmp_path)), spec, api_name="/preflight")
    assert report["rows"] == 24 and len(report["token_lengths"]) == 24
    assert report["truncated"] == sum(n > 8 for n in report["token_lengths"])
    assert sum(report["histogram"]["counts"]) == 24 and report["label_counts"] == {"neg": 12, "pos": 12}
    estimate = report["estimate"]
    assert estimate["steps"] >= 1 and estimate["total_s"] > 0 and len(estimate["probe"]["step_s"]) == 3
    with pytest.raises(Exception) as info:
        client.predict("only-one", api_name="/compare_runs")
    assert "Pick 2 to 5 runs" in str(info.value)


def test_compare_runs_in_the_browser_and_over_the_api(page, app_server, tiny_root, tmp_path) -> None:
    client = Client(app_server["url"], verbose=False)
    ids = []
    for rate in (0.001, 0.004):
        spec = json.dumps({"task": "classification", "base_model": str(tiny_root / "tiny-bert"), "name": f"lr {rate}",
                           "preset": "quick", "settings": {"batch_size": 4, "max_length": 16, "epochs": 1,
                                                           "learning_rate": rate}})
        ids.append(client.predict(handle_file(write_csv(tmp_path)), spec, api_name="/finetune")[0])
    found = client.predict(json.dumps(ids), api_name="/compare_runs")
    assert [r["id"] for r in found["runs"]] == ids and "learning_rate" in found["differences"]
    assert all(curve["train"] and curve["val"] for curve in found["curves"])
    open_tab(page, "Fine-tune")
    page.locator("#ft-compare").get_by_text("Compare runs").first.click()
    picker = page.locator("#ft-compare-pick input")
    for run_id in ids:
        picker.click()
        picker.fill(run_id)
        page.get_by_role("option", name=run_id).first.click()
    page.locator("#ft-compare-btn").click()
    page.locator("#ft-compare-plot .js-plotly-plot").wait_for(timeout=60_000)
    assert page.locator("#ft-compare-plot .scatterlayer .trace").count() == 4
    expect(page.locator("#ft-compare-table")).to_contain_text("settings differ")
    assert page.locator("#ft-compare-table tr[data-differs]").count() == len(found["differences"])


def test_settings_saved_as_a_preset_load_back_in_the_browser(page) -> None:
    open_tab(page, "Fine-tune")
    page.locator("#ft-settings").get_by_role("button").first.click()
    rate = page.locator("#ft-settings").get_by_label("Learning rate")
    fill_kept(rate, "0.0042")
    page.locator("#ft-presets").get_by_role("button").first.click()
    page.locator("#ft-preset-name input, #ft-preset-name textarea").first.fill("browser preset")
    page.locator("#ft-preset-save").click()
    expect(page.locator("#ft-preset-status")).to_contain_text('Saved the settings as preset "browser preset"',
                                                              timeout=30_000)
    fill_kept(rate, "0.0001")
    page.locator("#ft-preset-load").click()
    expect(page.locator("#ft-preset-status")).to_contain_text('Loaded preset "browser preset"', timeout=30_000)
    expect(rate).to_have_value("0.0042")
