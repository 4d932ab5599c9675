"""The insight views over the API and in Chromium: /logit_lens and /explain_label answer JSON; the logit-lens
heatmap renders in the Attention tab and downloads as a named PNG and SVG; "Why this label?" shows shaded text; the
token panel shows the alternatives and attention first, then the attributions, downloadable as SVG."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client

from tests.conftest import open_tab

TEXT = "The capital of France is Paris. The capital of Germany is"


def test_logit_lens_and_explain_label_endpoints(app_server, tiny_root) -> None:
    client = Client(app_server["url"], verbose=False)
    lens = client.predict(TEXT, str(tiny_root / "tiny-llama"), 8, api_name="/logit_lens")
    assert lens["num_layers"] == 3 and lens["num_positions"] == 8 and lens["truncated"]
    assert np.array(lens["top_probs"]).shape == (3, 8) and len(lens["final_tokens"]) == 8
    assert all(rank == 1 for rank in lens["final_ranks"][-1])
    why = client.predict("The team won the football match.", "minilm-l6", "", "embeddings", "sports, cooking",
                         api_name="/explain_label")
    assert why["predicted_label"] == why["label"] == "sports"
    assert len(why["tokens"]) == len(why["attributions"]) and "football" in why["tokens"]
    with pytest.raises(Exception) as info:
        client.predict(TEXT, str(tiny_root / "tiny-bert"), 8, api_name="/logit_lens")
    assert "causal language model" in str(info.value) and "Traceback" not in str(info.value)


@pytest.mark.browser
def test_logit_lens_heatmap_renders_and_downloads_png(page, artifacts_dir) -> None:
    open_tab(page, "Attention")
    page.locator("#attention-text textarea").fill(TEXT)
    page.get_by_role("tab", name="Logit lens").click()
    page.locator("#lens-run").click()
    note = page.locator("#lens-note")
    note.get_by_text("logit lens").wait_for(timeout=120_000)
    assert "smollm2-135m-instruct" in note.inner_text() and "layers 0 (embeddings) to 30" in note.inner_text()
    heatmap = page.locator("#lens-heatmap .js-plotly-plot")
    heatmap.wait_for(timeout=60_000)
    assert heatmap.locator(".heatmaplayer image, .hm image").count() >= 1
    assert heatmap.locator("text", has_text="Paris").count() >= 1  # a token shown in a cell
    page.locator("#lens-ranks .js-plotly-plot").wait_for(timeout=30_000)
    heatmap.hover()
    button = heatmap.locator(".modebar-btn[data-title='Download plot as a PNG'], "
                             ".modebar-btn[data-title='Download plot as a png']")
    with page.expect_download(timeout=60_000) as download:
        button.first.click()
    assert download.value.suggested_filename == "logit-lens.png"
    target = artifacts_dir / "logit-lens.png"
    download.value.save_as(target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    heatmap.hover()
    with page.expect_download(timeout=60_000) as download:
        heatmap.locator(".modebar-btn.lmw-svg-export").click()
    assert download.value.suggested_filename == "logit-lens.svg"
    target = artifacts_dir / "logit-lens.svg"
    download.value.save_as(target)
    svg = ElementTree.fromstring(target.read_text(encoding="utf-8"))  # well-formed XML
    assert svg.tag.endswith("svg") and svg.findall(".//{http://www.w3.org/2000/svg}text")
    assert "Paris" in target.read_text(encoding="utf-8")  # the cells' tokens are in the image


@pytest.mark.browser
def test_why_this_label_shows_shaded_text(page) -> None:
    open_tab(page, "Classify")
    page.locator("#classify-text textarea").fill("The team won the football match last night.")
    page.locator("#classify-why").get_by_text("Why this label?").click()
    page.locator("#classify-why-run").click()
    shaded = page.locator("#classify-why-predicted .lmw-attr")
    shaded.first.wait_for(timeout=120_000)
    assert shaded.count() >= 8 and "football" in page.locator("#classify-why-predicted").inner_text()
    assert "sports" in page.locator("#classify-why-predicted").inner_text()
    page.locator("#classify-why-chart .js-plotly-plot").wait_for(timeout=30_000)
    assert page.locator("#classify-why-download a").count() >= 1  # the HTML download


@pytest.mark.browser
def test_click_a_token_opens_the_panel(browser, ctx, tiny_root) -> None:
    """The Generate tab's panel on its own page: a token view with data-index spans (render.py) and the panel;
    clicking a token shows the alternatives and the shaded prompt."""
    from components.generate_inspect import inspect_panel, wire_inspect
    from components.i18n import I18N
    from pipelines.generation.render import token_html
    from pipelines.generation.results import TokenInfo
    from pipelines.insight.generated import remember_exchange
    from pipelines.sessions import session_key
    from tests.app_server import free_port

    ref = str(tiny_root / "tiny-llama")
    tok = ctx.manager.load(ref, "causal-lm").tokenizer
    answer = " Paris, and the capital of Germany is Berlin."
    ids = tok(answer, add_special_tokens=False)["input_ids"]

    def generate(request: gr.Request) -> str:
        remember_exchange(ctx.sessions, session_key(request), TEXT, answer, ref, mode="completion", precision="float32",
                          answer_ids=ids)
        return token_html([TokenInfo(i, tok.decode([i]), 0.5) for i in ids])

    with gr.Blocks() as demo:
        go = gr.Button("generate", elem_id="fake-generate")
        view = gr.HTML(elem_id="fake-tokens")
        panel = inspect_panel(ctx)
        wire_inspect(ctx, panel)
        go.click(generate, None, view)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), i18n=I18N,
                ssr_mode=False)
    page = browser.new_page()
    try:
        page.goto(demo.local_url, wait_until="load")
        page.locator("#fake-generate").click()
        tokens = page.locator("#fake-tokens .lmw-tok[data-index]")
        tokens.first.wait_for(timeout=60_000)
        assert tokens.count() == len(ids)
        tokens.nth(2).click()
        note = page.locator("#generate-inspect-note")
        note.get_by_text("index 2").wait_for(timeout=120_000)
        assert page.locator("#generate-inspect-index input").input_value() == "2"
        page.locator("#generate-inspect-alternatives .js-plotly-plot").wait_for(timeout=30_000)
        shaded = page.locator("#generate-inspect-attention .lmw-attr")
        assert shaded.count() == len(tok(TEXT)["input_ids"]) + 2  # the prompt and the two earlier answer tokens
        page.locator("#generate-inspect-attributions .lmw-attr").first.wait_for(timeout=120_000)  # they come second
        files = page.locator("#generate-inspect-download a")
        files.nth(2).wait_for(timeout=30_000)  # the HTML page and the two shaded views as SVG
        with page.expect_download(timeout=30_000) as download:
            page.locator("#generate-inspect-download tr", has_text="attributions").locator("a").first.click()
        svg = ElementTree.fromstring(Path(download.value.path()).read_text(encoding="utf-8"))
        spans = svg.findall("{http://www.w3.org/2000/svg}g")
        assert svg.tag == "{http://www.w3.org/2000/svg}svg" and len(spans) == shaded.count()
        assert page.locator("#generate-inspect-attributions .lmw-attr").count() == shaded.count()
        tokens.nth(2).focus()
        tokens.nth(2).press("ArrowRight")
        assert tokens.nth(3).evaluate("e => e === document.activeElement")
    finally:
        page.close()
        demo.close()
