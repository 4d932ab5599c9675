"""Classify and Summarize in the browser: errors stay in a status line next to the action (#18), inputs and
previous results are kept; NLI zero-shot is not offered offline, with one line saying what would enable it
(#18.7a); the batch section's options and status are Chinese in the Chinese UI (#18.6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.i18n import TRANSLATIONS
from tests.conftest import open_tab

EN, ZH = TRANSLATIONS["en"], TRANSLATIONS["zh-CN"]


def _wait_value(page, selector: str, not_value: str = "", timeout: int = 90_000) -> str:
    page.wait_for_function("([sel, old]) => { const e = document.querySelector(sel); return e && e.value !== old; }",
                           arg=[selector, not_value], timeout=timeout)
    return page.locator(selector).input_value()


@pytest.mark.browser
def test_classify_error_stays_in_its_line_and_results_are_kept(page) -> None:
    open_tab(page, "Classify")
    page.locator("#classify-text textarea").fill("Knead the dough and let it rise for an hour.")
    page.locator("#classify-run").click()
    assert _wait_value(page, "#classify-top textarea") == "cooking"
    page.locator("#classify-text textarea").fill("   ")
    page.locator("#classify-run").click()
    line = page.locator("#classify-errors")
    line.get_by_text("Type or paste a text to classify.").wait_for(timeout=30_000)
    page.wait_for_timeout(6000)  # the toast is gone by now; the line stays
    assert "Type or paste a text to classify." in line.inner_text()
    assert page.locator("#classify-top textarea").input_value() == "cooking"  # the previous result is kept
    assert page.locator("#classify-text textarea").input_value() == "   "  # the input too
    page.locator("#classify-text textarea").fill("The striker scored twice.")
    page.locator("#classify-run").click()
    assert _wait_value(page, "#classify-top textarea", "cooking") == "sports"
    page.wait_for_function("() => !document.querySelector('#classify-errors').innerText.includes('Type')",
                           timeout=30_000)  # a success clears the line


@pytest.mark.browser
def test_batch_without_a_file_says_so_next_to_the_button(page) -> None:
    open_tab(page, "Classify")
    page.get_by_role("tab", name="Batch (CSV)").first.click()
    page.locator("#classify-batch-run").click()
    page.locator("#classify-batch-errors").get_by_text("Upload a CSV, TSV or JSONL file first.").wait_for(
        timeout=30_000)
    open_tab(page, "Summarize")
    page.locator("#summarize-run").click()
    page.locator("#summarize-errors").get_by_text("Type or paste a text to summarise.").wait_for(timeout=30_000)


@pytest.mark.browser
def test_nli_is_not_offered_offline_and_a_line_says_why(page) -> None:
    open_tab(page, "Classify")
    method = page.locator("#classify-method")
    method.get_by_text(EN["classify.method_embeddings"]).wait_for(timeout=30_000)
    assert EN["classify.method_nli"] not in method.inner_text()
    assert EN["classify.method_lm"] in method.inner_text()
    note = page.locator("#classify-nli-note")
    assert note.is_visible() and "NLI zero-shot is not offered" in note.inner_text()


@pytest.mark.browser
def test_batch_options_and_status_are_chinese(browser, app_server, tmp_path: Path) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(app_server["url"], wait_until="load")
        page.get_by_role("tab", name=ZH["tab.classify"], exact=True).click()
        method = page.locator("#classify-method")
        method.get_by_text(ZH["classify.method_embeddings"]).wait_for(timeout=60_000)
        assert not re.search(r"Zero-shot|Fine-tuned", method.inner_text())
        page.get_by_role("tab", name=ZH["batch.title"]).first.click()
        page.locator("#classify-precision input").click()
        options = page.get_by_role("option")
        options.first.wait_for(timeout=10_000)
        texts = [options.nth(i).inner_text().replace("✓", "").strip() for i in range(options.count())]
        assert texts == [ZH[f"classify.precision_{p}"] for p in ("auto", "float32", "bfloat16", "int8")]
        page.keyboard.press("Escape")
        path = tmp_path / "rows.csv"
        path.write_text("text,label\nThe striker scored a goal,sports\nBake the bread for an hour,cooking\n",
                        encoding="utf-8")
        page.locator("#classify-batch-file input[type=file]").set_input_files(str(path))
        page.wait_for_timeout(1500)
        page.locator("#classify-batch-run").click()
        status = page.locator("#classify-batch-status")
        status.get_by_text("已完成").wait_for(timeout=90_000)
        assert "2 / 2 行" in status.inner_text()
        headers = page.locator("#classify-batch-preview th").all_inner_texts()
        assert any("预测标签" in h for h in headers) and not any("predicted_label" in h for h in headers)
        assert "准确率" in page.locator("#classify-batch-metrics").inner_text()
    finally:
        context.close()
