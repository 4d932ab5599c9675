"""Classify, Summarize and Extract over the API (gradio_client) and in the browser (Playwright)."""

from __future__ import annotations

import re

import pytest
from gradio_client import Client

from pipelines.tasks.sentences import split_sentences
from tests.conftest import choose, open_tab

TEMPLATE = "This text is about {}."


@pytest.fixture(scope="module")
def client(app_server) -> Client:
    return Client(app_server["url"], verbose=False)


def _screenshot(page, artifacts_dir, name: str) -> None:
    shots = artifacts_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def test_classify_api(client) -> None:
    label, _chart, scores, _note = client.predict(
        "The team won the football match", "embeddings", "minilm-l6", "sports, cooking, finance", TEMPLATE,
        api_name="/classify",
    )
    assert label == "sports"
    assert set(scores) == {"sports", "cooking", "finance"}
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-6)


def test_classify_api_bad_input_is_a_clean_error(client) -> None:
    with pytest.raises(Exception) as info:
        client.predict("some text", "embeddings", "minilm-l6", "only-one", TEMPLATE, api_name="/classify")
    assert "at least 2 candidate labels" in str(info.value)
    assert "Traceback" not in str(info.value)


def test_extract_entities_api(client) -> None:
    highlight, table = client.predict(
        "Apple opened a new office in Berlin.", "spacy-en-sm", api_name="/extract_entities")
    pairs = {(item["token"], item["class_or_confidence"]) for item in highlight}
    assert ("Apple", "ORG") in pairs
    assert ("Berlin", "GPE") in pairs
    assert table["data"][0][:4] == ["Apple", "ORG", 0, 5]


@pytest.mark.browser
def test_classify_tab_in_the_browser(page, artifacts_dir) -> None:
    open_tab(page, "Classify")
    page.locator("#classify-text textarea").fill("Whisk the eggs, then fold in the flour and bake the cake.")
    page.locator("#classify-run").click()
    top = page.locator("#classify-top textarea")
    page.wait_for_function("() => document.querySelector('#classify-top textarea').value !== ''", timeout=90_000)
    assert top.input_value() == "cooking"
    chart = page.locator("#classify-chart .js-plotly-plot")
    chart.wait_for(state="visible", timeout=30_000)
    assert chart.locator("text", has_text="cooking").count() >= 1
    _screenshot(page, artifacts_dir, "classify")


@pytest.mark.browser
def test_summarize_tab_in_the_browser(page, artifacts_dir) -> None:
    open_tab(page, "Summarize")
    text = ("The council approved a new budget. It adds money for buses. Critics say taxes rise too much. "
            "The mayor says transport helps shops. The timetable starts in January.")
    page.locator("#summarize-text textarea").fill(text)
    page.locator("#summarize-run").click()
    page.wait_for_function("() => document.querySelector('#summarize-output textarea').value !== ''",
                           timeout=90_000)
    summary = page.locator("#summarize-output textarea").input_value()
    kept = split_sentences(summary)
    assert len(kept) == 3 and all(sentence in text for sentence in kept)
    assert "Kept 3 sentence(s)." in page.locator("#summarize-note").inner_text()
    _screenshot(page, artifacts_dir, "summarize")


@pytest.mark.browser
def test_extract_tab_in_the_browser(page, artifacts_dir) -> None:
    open_tab(page, "Extract")
    page.locator("#extract-entities-text textarea").fill("Apple opened a new office in Berlin.")
    page.locator("#extract-entities-run").click()
    output = page.locator("#extract-entities-output")
    output.get_by_text("ORG").first.wait_for(state="visible", timeout=90_000)
    assert "Apple" in output.inner_text()
    assert "GPE" in output.inner_text()
    _screenshot(page, artifacts_dir, "extract")


def test_classify_csv_api_reports_metrics_and_files(client, tmp_path) -> None:
    from gradio_client import handle_file

    path = tmp_path / "rows.csv"
    path.write_text("text,label\nThe striker scored a goal,sports\nBake the bread for an hour,cooking\n"
                    "=1+1 stocks fell sharply,finance\n", encoding="utf-8")
    status, preview, files, metrics, _plot = client.predict(
        handle_file(str(path)), "text", "label", "embeddings", "minilm-l6", "sports, cooking, finance", TEMPLATE,
        api_name="/classify_csv",
    )
    assert "3 of 3 rows" in status
    assert "**Accuracy**" in metrics and "**Macro-F1**" in metrics
    assert [row[2] for row in preview["data"]] == ["sports", "cooking", "finance"]
    csv_file = next(f for f in files if str(f).endswith(".csv"))
    with open(csv_file, encoding="utf-8") as handle:
        assert "'=1+1 stocks fell sharply" in handle.read()


@pytest.mark.parametrize("precision", ["auto", "float32", "int8"])
def test_classify_csv_with_a_fine_tuned_classifier_at_each_precision(client, app_server, tiny_root, tmp_path,
                                                                     precision) -> None:
    from gradio_client import handle_file

    path = tmp_path / "many.csv"
    path.write_text("text\n" + "".join(f"{'long ' * (i % 9)}row number {i}\n" for i in range(80)), encoding="utf-8")
    status, preview, *_ = client.predict(
        handle_file(str(path)), "text", "", "finetuned", str(tiny_root / "tiny-bert-cls"), "", TEMPLATE, precision,
        api_name="/classify_csv",
    )
    assert "80 of 80 rows (done" in status
    assert preview["data"][-1][0].endswith("row number 79") and preview["data"][-1][1]  # the last row has a label
    if precision == "auto":  # the status says what auto chose, from a measurement on 64 rows
        # one plain sentence (it used to be "Precision: x (auto; measured against float32 as agreement/rows · ...")
        assert re.search(r"Precision: (float32|bfloat16|int8), chosen automatically: [^\n]*\.$", status), status
        zh = Client(app_server["url"], verbose=False, headers={"accept-language": "zh-CN"})
        zh_status, *_ = zh.predict(handle_file(str(path)), "text", "", "finetuned", str(tiny_root / "tiny-bert-cls"),
                                   "", TEMPLATE, precision, api_name="/classify_csv")
        assert "精度：" in zh_status and "自动选择" in zh_status  # decided already: the cached decision, in Chinese
    else:
        assert "Precision:" not in status


@pytest.mark.browser
def test_classify_batch_stop_keeps_done_rows_in_the_browser(page, artifacts_dir, tmp_path) -> None:
    path = tmp_path / "many.csv"
    path.write_text("text,label\n" + "".join(f"Match report number {i},sports\n" for i in range(300)),
                    encoding="utf-8")
    open_tab(page, "Classify")
    choose(page, "Zero-shot: LM likelihood")
    page.get_by_role("tab", name="Batch (CSV)").click()
    page.locator("input[type=file]").first.set_input_files(str(path))
    page.wait_for_timeout(1500)  # the column pickers fill after the upload
    page.locator("#classify-batch-run").click()
    status = page.locator("#classify-batch-status")
    status.get_by_text("running").wait_for(timeout=90_000)
    page.locator("#classify-batch-stop").click()
    status.get_by_text("stopped").wait_for(timeout=90_000)
    # The status may still carry Gradio's progress overlay text: read the "N of 300 rows" part only.
    done = int(re.search(r"(\d+) of 300 rows", status.inner_text()).group(1))
    assert 0 < done < 300
    files = page.locator("#classify-batch-files")
    files.get_by_text("classified").first.wait_for(timeout=10_000)
    listed = " ".join(files.inner_text().split())
    assert ".csv" in listed and ".json" in listed
    assert "Accuracy" in page.locator("#classify-batch-metrics").inner_text()
    page.locator("#classify-batch-plot .js-plotly-plot").wait_for(state="visible", timeout=30_000)
    _screenshot(page, artifacts_dir, "classify-batch")
