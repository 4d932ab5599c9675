"""The Evaluate tab served on its own (the lead registers it in app.py): the ``/evaluate`` API endpoint and the
page in a browser (English and Chinese), with the app's launch settings."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from playwright.sync_api import expect

from tests.app_server import free_port, wait_for_http
from tests.conftest import fill_kept
from tests.test_i18n_ui import VISIBLE_TEXT_JS, _identifiers, _open_accordions, english_words

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


@pytest.fixture(scope="module")
def evaluate_app(tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path, tiny_root: Path):
    import gradio as gr

    from app import launch_kwargs
    from components.evaluate import build_evaluate_tab
    from pipelines.config import AppConfig
    from pipelines.context import AppContext

    config = AppConfig(data_dir=tmp_path_factory.mktemp("eval-app"), cache_dir=shared_cache_dir,
                       extra_model_roots=[tiny_root])
    ctx = AppContext.create(config)
    with gr.Blocks() as demo:
        build_evaluate_tab(ctx)
    demo.queue(default_concurrency_limit=1)
    port = free_port()
    kwargs = {**launch_kwargs(config), "server_name": "127.0.0.1", "server_port": port}
    demo.launch(prevent_thread_lock=True, **kwargs)
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url)
    yield {"url": url, "ctx": ctx, "tiny_root": tiny_root}
    demo.close()


def test_evaluate_endpoint_returns_metrics_with_intervals_and_files(evaluate_app) -> None:
    client = Client(evaluate_app["url"], verbose=False)
    api = client.view_api(return_format="dict", print_info=False)
    params = [p["parameter_name"] for p in api["named_endpoints"]["/evaluate"]["parameters"]]
    assert params == ["file", "input_column", "target_column", "models", "task", "max_rows", "max_new_tokens",
                      "resamples", "seed"]
    status, summary, pairs, report, changed, files = client.predict(
        handle_file(str(EXAMPLES / "sentiment.csv")), "text", "label", ["minilm-l6"], "classification", 12, 8, 200, 0,
        api_name="/evaluate")
    assert report["rows"] == 12 and report["task"] == "classification"
    accuracy = report["metrics"]["minilm-l6"]["accuracy"]
    assert accuracy["low"] <= accuracy["value"] <= accuracy["high"]
    assert "Scored the first 12 of 20 rows" in status
    assert sorted(Path(f).name for f in files) == ["evaluation.json", "predictions.csv"]
    with pytest.raises(Exception, match="Choose between 1 and 4 models"):
        client.predict(handle_file(str(EXAMPLES / "sentiment.csv")), "text", "label", [], "auto", 12, 8, 200, 0,
                       api_name="/evaluate")


def _upload_and_pick(page, file: Path, model: str) -> None:
    page.locator("#evaluate-file input[type=file]").set_input_files(str(file))
    page.locator("#evaluate-input input").wait_for()
    page.wait_for_function("document.querySelector('#evaluate-input input').value === 'text'", timeout=60_000)
    models = page.locator("#evaluate-models input")
    models.fill(model)
    models.press("Enter")
    models.press("Escape")  # close the dropdown
    page.locator("#evaluate-models").get_by_text(model).first.wait_for()


def test_tab_in_chinese_shows_translated_results_and_keeps_inputs_on_error(evaluate_app, browser,
                                                                          upload_dir: Path) -> None:
    file = Path(shutil.copy(EXAMPLES / "sentiment.csv", upload_dir / "sentiment.csv"))
    context = browser.new_context(locale="zh-CN", extra_http_headers={"accept-language": "zh-CN,zh;q=0.9"},
                                  viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(evaluate_app["url"], wait_until="load")
        page.get_by_role("button", name="评估", exact=True).wait_for(timeout=60_000)
        _open_accordions(page)
        texts = page.evaluate(VISIBLE_TEXT_JS)
        words = english_words(texts, _identifiers())
        assert not words, f"English words on the Chinese page: {sorted(words)} in {texts}"
        page.get_by_role("button", name="评估", exact=True).click()  # no file yet: the error line says so
        page.locator("#evaluate-errors").get_by_text("请先上传留出数据表").wait_for(timeout=60_000)
        _upload_and_pick(page, file, "minilm-l6")
        page.get_by_role("button", name="评估", exact=True).click()
        summary = page.locator("#evaluate-summary")
        summary.get_by_text("准确率").wait_for(timeout=180_000)
        summary.get_by_text("宏平均 F1").wait_for()
        page.locator("#evaluate-status").get_by_text("所有模型均已打分 20 / 20 行").wait_for()
        expect(page.locator("#evaluate-errors")).not_to_contain_text("请先上传")  # success cleared the error line
        page.locator("#evaluate-per-class").get_by_text("精确率").wait_for()
        page.locator("#evaluate-plot-0").get_by_text("minilm-l6").first.wait_for(timeout=30_000)  # its confusion matrix
        assert not page.locator("#evaluate-plot-1").is_visible()
        shown = [page.locator(f"#evaluate-{part}").inner_text() for part in ("status", "summary", "per-class")]
        headers = [h for h in page.locator("#evaluate-summary th, #evaluate-per-class th").all_inner_texts()]
        words = english_words([shown[0], *headers], _identifiers())
        assert not words, f"English words in the Chinese results: {sorted(words)}"
    finally:
        context.close()


def test_progress_shows_rows_and_eta_and_stop_keeps_the_scored_rows(evaluate_app, browser, upload_dir: Path) -> None:
    file = upload_dir / "domain.csv"
    file.write_text("text\n" + "\n".join(f"Row {i} of the held-out domain text, short." for i in range(20000)) + "\n",
                    encoding="utf-8")
    model = str(evaluate_app["tiny_root"] / "tiny-gpt2")
    context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(evaluate_app["url"], wait_until="load")
        _upload_and_pick(page, file, model)
        page.get_by_text("Options", exact=True).click()
        fill_kept(page.get_by_label("Row cap"), "20000")
        page.get_by_role("button", name="Evaluate", exact=True).click()
        status = page.locator("#evaluate-status")
        expect(status).to_contain_text(re.compile(r"Scored \d+ of 20000 rows, about \d+:\d\d left"), timeout=120_000)
        expect(page.locator(".progress-text, .meta-text").first).to_be_visible()  # Gradio's progress bar
        page.get_by_role("button", name="Stop", exact=True).click()
        expect(status).to_contain_text(re.compile(r"\d+ of 20000 rows scored by every model \(stopped"),
                                       timeout=120_000)
        scored = int(re.search(r"(\d+) of 20000 rows scored", status.inner_text()).group(1))
        assert 0 < scored < 20000 and scored % 16 == 0  # whole chunks, kept
        summary = page.locator("#evaluate-summary")
        summary.get_by_text("Perplexity").wait_for(timeout=30_000)
        summary.get_by_text("Bits per token").wait_for()
        page.locator("#evaluate-files [aria-label='predictions.csv']").wait_for()  # the rows scored, to download
        for hidden in ("pairs", "changed", "compare-a", "per-class"):  # one model: nothing to pair, no classes
            expect(page.locator(f"#evaluate-{hidden}")).to_be_hidden()
    finally:
        context.close()
