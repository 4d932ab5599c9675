"""The Extract tab in the browser and over the API: errors stay in a line under the action that failed (#18), the
Chinese UI shows Chinese table headers and label meanings (#18.6, #18.10), and the documented endpoints return
answers and field values that are spans of the text (#18.1)."""

from __future__ import annotations

import re

import pytest
from gradio_client import Client

from components.i18n import TRANSLATIONS
from tests.conftest import open_tab

ZH = TRANSLATIONS["zh-CN"]
CJK = re.compile(r"[\u4e00-\u9fff]")
REPORT = ("Kestrel Robotics will build a test centre in Valencia. The firm expects to employ 260 technicians by "
          "2027. Its founder Lena Ostrova presented the project in Madrid.")


@pytest.fixture(scope="module")
def client(app_server) -> Client:
    return Client(app_server["url"], verbose=False)


def _headers(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{selector} thead th", "els => els.map(e => e.innerText.trim())")


@pytest.mark.browser
def test_entities_error_stays_in_its_line_and_the_result_is_kept(page) -> None:
    open_tab(page, "Extract")
    page.locator("#extract-entities-text textarea").fill("Lena Ostrova flew to Madrid.")
    page.locator("#extract-entities-run").click()
    output = page.locator("#extract-entities-output")
    output.get_by_text("GPE").first.wait_for(timeout=90_000)
    page.locator("#extract-entities-text textarea").fill("  ")
    page.locator("#extract-entities-run").click()
    line = page.locator("#extract-entities-errors")
    line.get_by_text("Type or paste a text first.").wait_for(timeout=30_000)
    page.wait_for_timeout(6000)  # the toast has gone; the line stays
    assert "Type or paste a text first." in line.inner_text()
    assert "Madrid" in output.inner_text()  # the previous result is kept
    assert page.locator("#extract-entities-text textarea").input_value() == "  "


@pytest.mark.browser
def test_fields_error_names_the_bad_field_next_to_the_button(page) -> None:
    open_tab(page, "Extract")
    page.get_by_role("tab", name="Fields").first.click()
    page.locator("#extract-fields-names textarea").fill("total, a$b")
    page.locator("#extract-fields-run").click()
    page.locator("#extract-fields-errors").get_by_text("a$b").wait_for(timeout=30_000)
    assert page.locator("#extract-fields-names textarea").input_value() == "total, a$b"


@pytest.mark.browser
def test_chinese_extract_tables_have_chinese_headers_and_label_meanings(browser, app_server) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_server["url"], wait_until="load")
    page.get_by_role("tab", name=ZH["tab.extract"], exact=True).click()
    table = "#extract-entities-table"
    page.wait_for_function(f"() => document.querySelector('{table} thead th') && "
                           f"document.querySelector('{table} thead').innerText.includes('{ZH['extract.col.label']}')",
                           timeout=60_000)
    page.locator("#extract-entities-run").click()
    page.locator("#extract-entities-output").get_by_text("GPE").first.wait_for(timeout=90_000)
    headers = [h for h in _headers(page, table) if h]
    assert headers[:5] == [ZH[f"extract.col.{c}"] for c in ("text", "label", "start", "end", "meaning")], headers
    body = page.locator(table).inner_text()
    assert ZH["extract.label.GPE"] in body and ZH["extract.label.ORG"] in body
    context.close()


def test_answer_endpoint_answers_from_the_text(client) -> None:
    answers = {}
    for question in ("Where will the test centre be built?", "How many technicians does the firm expect to employ?",
                     "Who presented the project?"):
        answer, highlight, details = client.predict(question, REPORT, "smollm2-135m-instruct", api_name="/answer")
        assert answer in REPORT and details["supported"] == bool(answer)
        answers[question] = answer
    assert list(answers.values()) == ["Valencia", "260", "Lena Ostrova"]


def test_fields_endpoint_values_are_in_the_text(client) -> None:
    text = "Receipt R-7781 issued by Pellworth Hardware on 11 June 2024 to Ivo Marsh. Total paid: 312.40 GBP."
    fields, notes, raw = client.predict(text, "customer, date, total", "smollm2-135m-instruct",
                                        api_name="/extract_fields")
    values = {row[0]: row[1] for row in fields["data"]}
    assert values == {"customer": "Ivo Marsh", "date": "11 June 2024", "total": "312.40 GBP"}, (values, raw)
    assert fields["headers"] == ["field", "value", "check"] and notes
