"""The Attention tab's handler class with plain values (no server): runs, re-selection, errors with keys, texts in
Chinese, the character cap with a note, bertviz options from the config, and slider ranges from config.json."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import plotly.graph_objects as go
import pytest

from components.attention_handlers import AttentionHandlers
from pipelines.attention import PositionKind
from pipelines.attention.shape import ModelShape, model_shape
from pipelines.context import AppContext
from pipelines.errors import InputError
from pipelines.messages import has_key

ROOT = Path(__file__).resolve().parent.parent
TEXT = "The animal didn't cross the street because it was too tired."
WORD = re.compile(r"[A-Za-z][A-Za-z_-]+")
# ASCII words allowed in the Chinese UI: model/library names, units and formula symbols.
ALLOWED = {"bertviz", "plotly", "cos", "sin", "RoPE", "theta", "llama", "bert", "tiny", "spaCy", "transformers"}


@pytest.fixture
def handlers(ctx: AppContext) -> AttentionHandlers:
    return AttentionHandlers(ctx)


@pytest.fixture
def llama(tiny_root: Path) -> str:
    return str(tiny_root / "tiny-llama")


def english_words(text: str, allowed: set[str]) -> list[str]:
    """ASCII words of ``text`` that are not in ``allowed`` (plotly's %{...} fields and HTML tags removed)."""
    text = re.sub(r"%\{[^}]*\}|<[^>]+>|\*\*", " ", text)
    return [word for word in WORD.findall(text) if word not in allowed and word.lower() not in allowed]


def figure_texts(fig: go.Figure) -> list[str]:
    """Every text a figure shows besides the data: title, axis titles, subplot titles, hover templates, ticks."""
    layout = fig.layout
    texts = [layout.title.text or ""]
    texts += [ann.text or "" for ann in layout.annotations]
    for name in dir(layout):
        if name.startswith(("xaxis", "yaxis")) and getattr(layout, name, None) is not None:
            axis = getattr(layout, name)
            texts.append(axis.title.text or "")
            texts += list(axis.ticktext or [])
    texts += [trace.hovertemplate or "" for trace in fig.data]
    return texts


def test_run_returns_plain_values_and_reselect_needs_a_run(handlers, llama) -> None:
    view = handlers.run(llama, TEXT, "", 64, 7, 99)
    assert view.shape == ModelShape(2, 4)
    assert (view.selection.layer, view.selection.head) == (1, 3)  # clamped into the model's range
    assert "2 layers x 4 heads" in view.note and "decoder (causal)" in view.note
    assert view.head_html.startswith("<iframe") and len(view.token_choices) == view.result.num_tokens
    plots = handlers.reselect(view.result, 0, -1, 2)
    assert "mean over heads" in plots.head.layout.title.text
    html, plots = handlers.relayer(view.result, 1, 0, 0)
    assert html.startswith("<iframe") and "Layer 1" in plots.head.layout.title.text
    with pytest.raises(InputError) as info:
        handlers.reselect(None, 0, 0, 0)
    assert info.value.key == "attention.err.run_first" and "Show attention" in str(info.value)
    assert "显示注意力" in info.value.render("zh-CN")


def test_every_error_carries_a_key_with_both_texts(handlers, llama) -> None:
    cases = [
        lambda: handlers.run(llama, "   ", "", 64, 0, 0),
        lambda: handlers.run(llama, TEXT, "", "many", 0, 0),
        lambda: handlers.run("spacy-en-sm", TEXT, "", 64, 0, 0),
        lambda: handlers.api_json(llama, TEXT, "", 5, 0, 64),
        lambda: handlers.positions("spacy-en-sm"),
        lambda: handlers.compare(llama, "minilm-l6", TEXT, "", 64, 0, 0),
    ]
    for case in cases:
        with pytest.raises(InputError) as info:
            case()
        key = info.value.key
        assert key.startswith("attention.err.") and has_key(key, "en") and has_key(key, "zh-CN"), key
        assert re.search(r"[\u4e00-\u9fff]", info.value.render("zh-CN")), key
    with pytest.raises(InputError, match="Layer 5 does not exist; this model has layers 0-1"):
        handlers.api_json(llama, TEXT, "", 5, 0, 64)


def test_chinese_views_have_no_english_words(handlers, llama) -> None:
    view = handlers.run(llama, TEXT * 20, "", 16, 1, -1, lang="zh-CN")
    texts = [view.note]
    for fig in view.plots.as_tuple():
        texts += figure_texts(fig)
    compared = handlers.compare(llama, llama, TEXT, "", 64, 1, 2, lang="zh-CN")
    texts += [compared.summary, *compared.headers, *figure_texts(compared.head), *figure_texts(compared.grid)]
    description, positions = handlers.positions(llama, lang="zh-CN")
    texts += [description, *figure_texts(positions)]
    texts += handlers.api_json(llama, TEXT * 20, "", 0, 0, 16, lang="zh-CN")["notes"]
    allowed = ALLOWED | set(WORD.findall(" ".join(view.result.tokens)))  # the user's own words stay as typed
    left = {text: words for text in texts if (words := english_words(text.replace(llama, ""), allowed))}
    assert not left, left
    assert "只保留了前 16 个" in view.note and "层 ×" in view.note
    assert compared.headers == ["层", "注意力头", "平均总变差距离", "最大绝对差"]
    # English stays as the API always answered
    english = handlers.compare(llama, llama, TEXT, "", 64, 1, 2)
    assert english.headers == ["layer", "head", "mean_tv_distance", "max_abs_diff"]
    assert "largest change in one weight 0.0000" in english.summary


def test_every_position_kind_has_a_name_in_both_languages() -> None:
    for kind in PositionKind:
        assert has_key(kind.msg.key, "en") and has_key(kind.msg.key, "zh-CN"), kind


def test_text_over_the_character_cap_is_cut_with_a_note(ctx, llama) -> None:
    small = AppContext(replace(ctx.config, max_input_chars=40), ctx.manager, ctx.runs, ctx.sessions)
    view = AttentionHandlers(small).run(llama, TEXT * 3, TEXT, 256, 0, 0)
    assert "Only the first 40 of 180 characters are used." in view.note
    assert view.note.count("Only the first 40") == 2  # the text and the second sentence
    assert "只使用了前 40 个字符" in AttentionHandlers(small).run(llama, TEXT * 3, "", 256, 0, 0, "zh-CN").note


def test_bertviz_scripts_follow_the_config_not_the_environment(ctx, llama, monkeypatch) -> None:
    monkeypatch.setenv("LMW_BERTVIZ_JS", "served")
    inline = AttentionHandlers(ctx)  # the config says inline; the variable is read by AppConfig.from_env only
    assert inline.bertviz.vendor_base is None
    assert "RequireJS 2.3.6" in inline.run(llama, TEXT, "", 32, 0, 0).head_html
    served = AttentionHandlers(AppContext(replace(ctx.config, bertviz_js="served"), ctx.manager, ctx.runs))
    assert served.bertviz.vendor_base.startswith("gradio_api/file=")
    html = served.run(llama, TEXT, "", 32, 0, 0).head_html
    assert "RequireJS 2.3.6" not in html and "require.min.js" in html


def test_model_shape_comes_from_config_json_without_loading(ctx, tiny_root) -> None:
    assert model_shape(str(tiny_root / "tiny-bert"), ctx.config) == ModelShape(2, 4)
    assert model_shape("minilm-l6", ctx.config) == ModelShape(6, 12)
    assert model_shape("smollm2-135m-instruct", ctx.config) == ModelShape(30, 9)
    assert model_shape("spacy-en-sm", ctx.config) is None
    assert model_shape("no/such-model-here", ctx.config) is None
    assert model_shape("", ctx.config) is None
    assert ctx.manager.loaded() == []  # nothing was loaded


HEAVY = ("torch", "transformers", "peft", "bertviz", "spacy", "sklearn")


def test_attention_modules_import_no_heavy_library_at_start() -> None:
    files = [*ROOT.glob("pipelines/attention/*.py"), *ROOT.glob("components/attention*.py")]
    top_level = []
    for path in files:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name.split(".")[0] in HEAVY or name in ("pipelines.models.manager", "pipelines.attention.task"):
                    top_level.append(f"{path.name}: {name}")
    assert not top_level, top_level
    code = ("import sys, pipelines.attention, pipelines.attention.shape, pipelines.attention.figures; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bertviz_labels_follow_the_language(ctx, tiny_root) -> None:
    from pipelines.attention import extract, head_view_html, model_view_html
    from pipelines.attention.extract import AttentionInput

    bert = str(tiny_root / "tiny-bert")
    pair = extract(ctx.manager, bert, AttentionInput(TEXT, "It was tired."))
    english = head_view_html(pair, 0).document
    assert 'Layer: <select id="layer">' in english and ">Sentence A -> Sentence B</option>" in english
    chinese = head_view_html(pair, 0, lang="zh-CN").document
    assert '层: <select id="layer">' in chinese and '注意力: <select id="filter">' in chinese
    assert ">句子 A → 句子 B</option>" in chinese and ">全部</option>" in chinese
    assert ">Sentence A -> Sentence B</option>" not in chinese
    assert chinese.count('"name": "Sentence B -> Sentence A"') == 1  # the data bertviz reads is untouched
    model = model_view_html(pair, lang="zh-CN").document
    assert '.text("\\u6ce8\\u610f\\u529b\\u5934")' in model and '.text("Heads")' not in model  # 注意力头
    assert "config.layers[layerIndex] + " in model and "'Layer ' + config.layers" not in model
    assert "'Layer ' + config.layers" in model_view_html(pair).document
