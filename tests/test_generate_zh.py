"""#18: the Generate tab in Chinese shows no English word (labels, options, notes, accordions opened)."""

from __future__ import annotations

import pytest

from pipelines.messages import texts
from tests.test_i18n_ui import VISIBLE_TEXT_JS, _identifiers, _open_accordions, english_words

PRODUCTS = frozenset({"llama.cpp"})  # the engine's name (the Engine setting's help text names it), like "transformers"


@pytest.mark.browser
def test_generate_tab_in_chinese_has_no_english_words(browser, app_server) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(app_server["url"], wait_until="load")
        page.get_by_role("tab", name=texts()["zh-CN"]["tab.models"], exact=True).click()
        page.wait_for_timeout(500)
        # the header, another tab: not ours
        shell = english_words(page.evaluate(VISIBLE_TEXT_JS), _identifiers() | PRODUCTS)
        page.get_by_role("tab", name=texts()["zh-CN"]["tab.generate"], exact=True).click()
        page.locator("#generate-run").wait_for(timeout=60_000)
        _open_accordions(page)
        page.wait_for_timeout(500)
        shown = page.evaluate(VISIBLE_TEXT_JS)
        page.get_by_role("radio", name="补全", exact=True).check()  # completion mode shows the answer box too
        page.wait_for_timeout(500)
        shown += page.evaluate(VISIBLE_TEXT_JS)
    finally:
        context.close()
    assert any("模型 B" in text for text in shown)  # the walk saw the opened compare section
    assert not english_words(shown, _identifiers() | PRODUCTS) - shell
