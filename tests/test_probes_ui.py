"""Playwright: probes entered before Start show up as a table while the run trains (and in Chinese headers)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.conftest import fill_kept, open_tab
from tests.test_finetune_ui import write_csv


def test_probe_table_appears_during_a_run(page, tiny_root, tmp_path) -> None:
    open_tab(page, "Fine-tune")
    page.locator("#ft-file input[type=file]").set_input_files(write_csv(tmp_path))
    page.locator("#ft-report").get_by_text("rows will be used").wait_for(timeout=30_000)
    base = page.locator("#ft-base input")
    base.fill(str(tiny_root / "tiny-bert"))
    base.press("Enter")
    page.locator("#ft-probes-inputs").get_by_role("button").first.click()
    fill_kept(page.locator("#ft-probes textarea"), "a superb lovely film\na dull boring film")
    page.locator("#ft-start").click()
    table = page.locator("#ft-probe-table")
    expect(table).to_contain_text("a superb lovely film", timeout=120_000)
    expect(table).to_contain_text("previous answer")
    expect(table).to_contain_text("pos")
    page.locator("#ft-progress-text[data-status=complete]").wait_for(timeout=180_000)
    expect(table).to_contain_text("a dull boring film")


def test_domain_task_trains_on_a_text_file_and_shows_before_and_after(page, tiny_root, tmp_path) -> None:
    import shutil
    from pathlib import Path

    manual = tmp_path / "manual.txt"
    shutil.copyfile(Path(__file__).resolve().parent.parent / "assets" / "examples" / "domain_manual.txt", manual)
    open_tab(page, "Fine-tune")
    page.get_by_role("radio", name="Domain adaptation (continue pre-training on domain text)").check()
    expect(page.locator("#ft-base input")).to_have_value("smollm2-135m-instruct")
    page.locator("#ft-file input[type=file]").set_input_files(str(manual))
    report = page.locator("#ft-report")
    report.get_by_text("rows will be used").wait_for(timeout=30_000)
    assert "48" in report.inner_text()  # one row per paragraph
    base = page.locator("#ft-base input")
    base.fill(str(tiny_root / "tiny-llama"))
    base.press("Enter")
    page.locator("#ft-settings").get_by_role("button").first.click()
    fill_kept(page.get_by_label("Epochs"), "1")
    fill_kept(page.get_by_label("Max length (tokens)"), "32")
    page.locator("#ft-start").click()
    log = page.locator("#ft-log textarea")
    # The log textarea's value (not its text) holds the lines; a session's previous run may still be shown.
    expect(log).to_have_value(re.compile("Loading .* for domain adaptation"), timeout=120_000)
    expect(log).to_have_value(re.compile("Held-out domain text: perplexity .*saved \\(complete\\)", re.S),
                              timeout=300_000)
    details = page.locator("#ft-details")
    expect(details).to_contain_text("held-out domain text", timeout=30_000)
    expect(details).to_contain_text("general English sample")
