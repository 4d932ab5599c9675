"""The Attention tab over the API and in Chromium: bertviz's SVG inside its iframe and the plotly heatmap."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client

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

    layer_box = page.get_by_label("number input for Layer")
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
