"""The Attention tab over the API and in Chromium: bertviz's SVG inside its iframe and the plotly heatmap."""

from __future__ import annotations

import re

import numpy as np
import pytest
from gradio_client import Client
from playwright.sync_api import expect

from tests.conftest import open_tab

TEXT = "The animal didn't cross the street because it was too tired."


def test_attention_api_returns_weights_as_json(app_server, tiny_root) -> None:
    client = Client(app_server["url"], verbose=False)
    ref = str(tiny_root / "tiny-llama")
    answer = client.predict(ref, TEXT, "", 1, -1, 256, api_name="/attention")
    n = answer["num_tokens"]
    assert (answer["num_layers"], answer["num_heads"]) == (2, 4)
    assert len(answer["tokens"]) == n and answer["causal"] is True
    weights = np.array(answer["weights"])
    assert answer["weights_shape"] == ["head", "query", "key"] and weights.shape == (4, n, n)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-4)
    capped = client.predict(ref, TEXT * 10, "", 0, 0, 16, api_name="/attention")
    assert capped["num_tokens"] == 16 and capped["truncated"]
    assert "only the first 16 were kept" in capped["notes"][0]
    assert np.array(capped["weights"]).shape == (16, 16)


def test_attention_api_errors_are_one_clear_sentence(app_server, tiny_root) -> None:
    client = Client(app_server["url"], verbose=False)
    with pytest.raises(Exception) as info:
        client.predict(str(tiny_root / "tiny-bert"), "   ", "", 0, 0, 256, api_name="/attention")
    assert "Type a text" in str(info.value) and "Traceback" not in str(info.value)
    with pytest.raises(Exception) as info:
        client.predict(str(tiny_root / "tiny-bert"), TEXT, "", 9, 0, 256, api_name="/attention")
    assert "Layer 9 does not exist" in str(info.value)


@pytest.mark.browser
def test_attention_tab_renders_bertviz_and_plotly(page, artifacts_dir) -> None:
    open_tab(page, "Attention")
    page.locator("#attention-run").click()
    note = page.locator("#attention-note")
    note.get_by_text("layers x").wait_for(timeout=120_000)
    assert "smollm2-135m-instruct" in note.inner_text() and "decoder (causal)" in note.inner_text()

    frame = page.frame_locator("#attention-head-view iframe.bertviz-frame")
    svg = frame.locator("#vis svg")
    svg.wait_for(timeout=60_000)
    assert svg.locator("text").count() > 10  # one label per token on each side
    assert page.locator("#attention-head-view iframe").get_attribute("sandbox") == "allow-scripts"

    page.get_by_role("tab", name="Heatmaps").click()
    heatmap = page.locator("#attention-heatmap .js-plotly-plot")
    heatmap.wait_for(timeout=60_000)
    assert heatmap.locator(".heatmaplayer image, .hm image").count() >= 1
    assert "Layer 0" in heatmap.locator(".gtitle").text_content()
    page.locator("#attention-rollout .js-plotly-plot").wait_for(timeout=30_000)

    layer_box = page.get_by_label("number input for Layer", exact=True)
    layer_box.fill("2")
    layer_box.press("Enter")
    layer_box.blur()
    heatmap.locator(".gtitle", has_text="Layer 2").wait_for(timeout=60_000)

    shots = artifacts_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    page.get_by_role("tab", name="bertviz head view").click()
    page.locator("#attention-head-view iframe").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "attention.png"), full_page=True)


def test_compare_and_position_endpoints(app_server, tiny_root) -> None:
    client = Client(app_server["url"], verbose=False)
    ref = str(tiny_root / "tiny-llama")
    summary, _diff, table, _grid = client.predict(
        ref, ref, TEXT, "", 256, 1, 2, api_name="/attention_compare"
    )
    assert "largest change in one weight 0.0000" in summary
    rows = table["data"] if isinstance(table, dict) else table
    assert len(rows) == 8 and all(float(row[2]) == 0 for row in rows)  # 2 layers x 4 heads, none changed
    description, plot = client.predict(str(tiny_root / "tiny-bert"), api_name="/position_embeddings")
    assert description.startswith("Learned absolute position embeddings") and plot
    with pytest.raises(Exception) as info:
        client.predict(ref, str(tiny_root / "tiny-bert"), TEXT, "", 256, 0, 0, api_name="/attention_compare")
    assert "different tokens" in str(info.value)


@pytest.mark.browser
def test_sliders_show_the_picked_models_range_before_any_run(page, config, tiny_root) -> None:
    from pipelines.attention.shape import model_shape

    default = model_shape("smollm2-135m-instruct", config)  # the picker's default: 30 layers x 9 heads
    open_tab(page, "Attention")
    layer = page.locator("#attention-layer input[type=range]")
    head = page.locator("#attention-head input[type=range]")
    expect(layer).to_have_attribute("max", str(default.layers - 1), timeout=30_000)  # was 127 before a run
    expect(head).to_have_attribute("max", str(default.heads - 1))
    assert head.get_attribute("min") == "-1"
    picker = page.locator("#attention-model input")
    picker.fill(str(tiny_root / "tiny-bert"))
    picker.press("Enter")
    expect(layer).to_have_attribute("max", "1", timeout=30_000)  # tiny-bert: 2 layers x 4 heads
    expect(head).to_have_attribute("max", "3")
    page.locator("#attention-run").click()
    page.locator("#attention-note").get_by_text("2 layers x 4 heads").wait_for(timeout=120_000)
    assert layer.get_attribute("max") == "1" and head.get_attribute("max") == "3"


@pytest.mark.browser
def test_attention_error_stays_in_its_line_and_outputs_keep_their_value(page, tiny_root) -> None:
    open_tab(page, "Attention")
    picker = page.locator("#attention-model input")
    picker.fill(str(tiny_root / "tiny-llama"))
    picker.press("Enter")
    note = page.locator("#attention-note")
    page.locator("#attention-run").click()
    note.get_by_text("2 layers x 4 heads").wait_for(timeout=120_000)
    before = note.inner_text()
    text = page.locator("#attention-text textarea")
    text.fill("   ")
    page.locator("#attention-run").click()
    line = page.locator("#attention-errors")
    expect(line).to_contain_text("Type a text to look at its attention.", timeout=60_000)
    page.wait_for_timeout(6000)  # the toast has gone; the line still says what went wrong
    expect(line).to_contain_text("Type a text to look at its attention.")
    assert note.inner_text() == before and text.input_value() == "   "
    text.fill(TEXT)
    page.locator("#attention-run").click()
    expect(line).to_have_text("", timeout=60_000)  # the next success clears it


@pytest.mark.browser
def test_attention_tab_in_chinese(browser, app_server, tiny_root) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_server["url"], wait_until="load")
    page.get_by_role("tab", name="注意力", exact=True).click()
    page.get_by_role("tab", name="比较两个模型").click()
    headers = page.locator("#attention-top-heads")
    expect(headers).to_contain_text("平均总变差距离", timeout=30_000)  # table headers in the page's language
    assert "mean_tv_distance" not in headers.inner_text()
    picker = page.locator("#attention-model input")
    picker.fill(str(tiny_root / "tiny-llama"))
    picker.press("Enter")
    page.get_by_role("tab", name="热力图").click()
    page.get_by_role("button", name="显示注意力").click()
    note = page.locator("#attention-note")
    note.get_by_text("2 层 × 每层 4 个注意力头").wait_for(timeout=120_000)
    assert "解码器（因果）" in note.inner_text() and "layers" not in note.inner_text()
    title = page.locator("#attention-heatmap .gtitle")
    expect(title).to_contain_text("第 0 层", timeout=60_000)
    assert "Layer" not in title.text_content()
    axes = page.locator("#attention-heatmap .g-xtitle, #attention-heatmap .g-ytitle").all_text_contents()
    assert axes and all(re.search(r"[\u4e00-\u9fff]", axis) for axis in axes), axes
    context.close()
