"""Saving the insight views and the token panel's two looks, without a server: the shaded views as well-formed SVG
(one box per token, coloured by sign, escaped text), the downloads of the token panel and of "Why this label?",
the page script that adds the SVG button, and integrated gradients that stop early only when complete."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from pipelines.insight import figures
from pipelines.insight.attribution import FIRST_STEPS, AttributionMethod, step_plan
from pipelines.insight.export import META_KEY, shaded_svg, svg_button_js
from pipelines.insight.token_attribution import attribute_token

SVG = "{http://www.w3.org/2000/svg}"
PROMPT = "The capital of France is"
ANSWER = " Paris, and the capital of Germany is Berlin."
COMPLETION = {"mode": "completion", "precision": "float32"}


def test_shaded_svg_is_well_formed_with_one_coloured_box_per_token() -> None:
    tokens = ["The", " <b>&", " cat", "\u21b5", " sat"] * 30  # long enough to wrap; markup is escaped
    scores = [0.5, -1.0, 0.0, 0.25, 1.0] * 30
    svg = shaded_svg(tokens, scores, "Toward \"sports\" <95%>", figures.shade)
    root = ElementTree.fromstring(svg)
    boxes = root.findall(f"{SVG}g")
    assert root.tag == f"{SVG}svg" and len(boxes) == len(tokens)
    assert [box.find(f"{SVG}text").text for box in boxes[:2]] == ["The", " <b>&"]
    fills = [(box.find(f"{SVG}rect").get("fill"), float(box.find(f"{SVG}rect").get("fill-opacity")))
             for box in boxes[:3]]
    assert fills[0][0] == "rgb(22,163,74)" and fills[1][0] == "rgb(220,38,38)"  # green for, red against
    assert fills[1][1] > fills[0][1] > fills[2][1] == 0.0  # the strongest is the darkest
    rows = {float(box.find(f"{SVG}text").get("y")) for box in boxes}
    assert len(rows) > 1 and int(root.get("height")) > max(rows)  # wrapped, and every line inside the image
    assert all(float(box.find(f"{SVG}rect").get("x")) + float(box.find(f"{SVG}rect").get("width"))
               <= int(root.get("width")) for box in boxes)


def test_the_page_script_names_the_button_per_language_and_reads_the_export_name() -> None:
    js = svg_button_js({"en": "Download plot as SVG", "zh-CN": "下载"})
    assert '"zh-CN": ' + json.dumps("下载") in js and "__TITLES__" not in js and f"meta.{META_KEY}" in js
    assert "format: 'svg'" in js and "window.__lmwSvgExport" in js


def test_step_plan_tries_a_few_steps_first() -> None:
    assert step_plan(32) == (FIRST_STEPS, 32) and step_plan(FIRST_STEPS) == (FIRST_STEPS,) and step_plan(4) == (4,)


def test_integrated_gradients_stop_early_only_when_complete(ctx, tiny_root: Path) -> None:
    """The attributions sum to the output difference within 5% of it, whatever number of steps was used."""
    import torch

    from pipelines.attention.extract import load_for_attention

    loaded = load_for_attention(ctx.manager, str(tiny_root / "tiny-llama"))
    prefix = loaded.tokenizer(PROMPT)["input_ids"]
    token = loaded.tokenizer(ANSWER, add_special_tokens=False)["input_ids"][0]
    scores, used, note = attribute_token(loaded, prefix, token, AttributionMethod.INTEGRATED_GRADIENTS, 32, early=True)
    assert used in step_plan(32) and len(scores) == len(prefix)
    special = set(loaded.tokenizer.all_special_ids)
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    baseline = [i if i in special else pad for i in prefix]
    with torch.inference_mode():
        logp = [float(torch.log_softmax(loaded.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)[token])
                for ids in (prefix, baseline)]
    gap = logp[0] - logp[1]
    if note is None or note.key == "insight.note.ig_converged":
        assert abs(float(np.sum(scores)) - gap) <= 0.05 * abs(gap) + 1e-6
    assert (note is not None and note.key == "insight.note.ig_converged") == (used < 32)


def test_token_panel_shows_alternatives_first_then_attributions_with_svg_downloads(ctx, tiny_root: Path) -> None:
    from components.generate_inspect_handlers import InspectHandlers
    from pipelines.insight.generated import remember_exchange

    ref = str(tiny_root / "tiny-llama")
    ids = ctx.manager.load(ref, "causal-lm").tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    remember_exchange(ctx.sessions, "x1", PROMPT, ANSWER, ref, mode="completion", precision="float32", answer_ids=ids)
    first, last = list(InspectHandlers(ctx).inspect_steps("x1", 2, lang="zh-CN"))
    assert not first.result.attributions and not first.files and "lmw-attributing" in first.attribution_html
    assert "正在计算归因" in first.attribution_html
    assert first.attention_html.count("class='lmw-attr'") == first.result.position
    assert len(first.alternatives.data[0].y) == 10  # the alternatives come with the first look
    assert last.result.attributions and len(last.files) == 3 and last.files[0].endswith(".html")
    for path in last.images:
        root = ElementTree.fromstring(Path(path).read_text(encoding="utf-8"))
        assert len(root.findall(f"{SVG}g")) == last.result.position


def test_why_this_label_downloads_svg_for_each_label(ctx) -> None:
    from components.classify_handlers import ClassifyHandlers

    view = ClassifyHandlers(ctx).why.explain("The team won the football match.", "embeddings", "minilm-l6",
                                             "sports, cooking", "", other="cooking")
    assert len(view.images) == 2 and [Path(p).suffix for p in view.images] == [".svg", ".svg"]
    texts = [ElementTree.fromstring(Path(p).read_text(encoding="utf-8")) for p in view.images]
    assert all(len(root.findall(f"{SVG}g")) == len(view.predicted.tokens) for root in texts)
    assert "football" in Path(view.images[0]).read_text(encoding="utf-8")


@pytest.mark.parametrize("method", ["gradient_x_input"])
def test_gradient_x_input_uses_one_pass(ctx, tiny_root: Path, method: str) -> None:
    from pipelines.attention.extract import load_for_attention

    loaded = load_for_attention(ctx.manager, str(tiny_root / "tiny-llama"))
    prefix = loaded.tokenizer(PROMPT)["input_ids"]
    scores, used, note = attribute_token(loaded, prefix, 5, AttributionMethod(method), 32)
    assert used == 1 and note is None and len(scores) == len(prefix) and np.any(scores != 0)
