"""Attention extraction, rollout, comparison, position tables, bertviz HTML and the API's JSON."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from pipelines.attention import (
    AttentionInput,
    BertvizOptions,
    Selection,
    attention_json,
    build_views,
    compare,
    extract,
    head_view_html,
    iframe,
    model_view_html,
    position_table,
    rollout,
)
from pipelines.attention.analysis import pool, token_profile
from pipelines.attention.bertviz_html import compact_numbers, script_urls
from pipelines.attention.positions import rotary_table, sinusoidal_table
from pipelines.attention.views import notes_markdown
from pipelines.errors import InputError

TEXT = "The animal didn't cross the street because it was too tired."


@pytest.fixture
def bert(tiny_root: Path) -> str:
    return str(tiny_root / "tiny-bert")


@pytest.fixture
def llama(tiny_root: Path) -> str:
    return str(tiny_root / "tiny-llama")


def make_adapter_run(ctx, base: str, run_id: str) -> str:
    """A LoRA adapter with non-zero init saved as a complete causal-lm run; returns its reference."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base)
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "k_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, lora)
    folder = ctx.config.runs_dir / run_id
    peft_model.save_pretrained(folder / "adapter")
    meta = {"task": "causal-lm", "base_model": base, "status": "complete", "name": "test adapter"}
    (folder / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    return f"run:{run_id}"


def test_every_attention_row_sums_to_one(ctx, bert, llama) -> None:
    for ref in (bert, llama):
        result = extract(ctx.manager, ref, AttentionInput(TEXT))
        sums = result.attentions.sum(axis=-1)
        assert result.attentions.ndim == 4
        np.testing.assert_allclose(sums, 1.0, atol=1e-4)


def test_decoder_upper_triangle_is_zero_and_encoder_is_not(ctx, bert, llama) -> None:
    decoder = extract(ctx.manager, llama, AttentionInput(TEXT))
    n = decoder.num_tokens
    upper = np.triu_indices(n, k=1)
    assert decoder.causal
    assert np.all(decoder.attentions[:, :, upper[0], upper[1]] == 0)
    encoder = extract(ctx.manager, bert, AttentionInput(TEXT))
    assert not encoder.causal
    assert np.all(encoder.attentions[:, :, upper[0], upper[1]] > 0)


def test_eager_model_is_a_separate_cache_entry(ctx, llama) -> None:
    extract(ctx.manager, llama, AttentionInput(TEXT))
    default = ctx.manager.load(llama)
    eager = ctx.manager.load(llama, attn_implementation="eager")
    assert default is not eager
    assert eager.key.attn == "eager" and default.key.attn is None
    assert {m["attention"] for m in ctx.manager.loaded()} == {"eager", "default"}


def test_json_shape_matches_model_config(ctx) -> None:
    result = extract(ctx.manager, "minilm-l6", AttentionInput(TEXT, "It was very tired."))
    config = ctx.manager.load("minilm-l6", attn_implementation="eager").model.config
    layers, heads, n = config.num_hidden_layers, config.num_attention_heads, result.num_tokens
    full = json.loads(json.dumps(attention_json(result)))
    assert (full["num_layers"], full["num_heads"], full["num_tokens"]) == (layers, heads, len(full["tokens"]))
    assert np.array(full["weights"]).shape == (layers, heads, n, n)
    assert full["weights_shape"] == ["layer", "head", "query", "key"]
    one_layer = attention_json(result, layer=2)
    assert np.array(one_layer["weights"]).shape == (heads, n, n) and one_layer["layer"] == 2
    one_head = attention_json(result, layer=2, head=3)
    assert np.array(one_head["weights"]).shape == (n, n)
    np.testing.assert_allclose(one_head["weights"], result.attentions[2, 3], atol=1e-6)
    assert full["tokens"][0] == "[CLS]" and full["sentence_b_start"] is not None
    assert full["tokens"][full["sentence_b_start"] - 1] == "[SEP]"
    with pytest.raises(InputError, match="Layer 6 does not exist"):
        attention_json(result, layer=layers)
    with pytest.raises(InputError, match="ask for one layer"):
        attention_json(result.__class__(**{**vars(result), "attentions": np.zeros((30, 9, 512, 512), "float32"),
                                           "tokens": ["x"] * 512}))


class Scripts(HTMLParser):
    """Collects each script element's src and text as a browser's parser would split them."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "script":
            self.scripts.append({"src": dict(attrs).get("src"), "text": ""})

    def handle_data(self, data: str) -> None:
        if self.scripts and self.lasttag == "script":
            self.scripts[-1]["text"] += data


def parse_scripts(document: str) -> list[dict]:
    parser = Scripts()
    parser.feed(document)
    return parser.scripts


def test_bertviz_html_has_no_remote_script_urls(ctx, bert) -> None:
    result = extract(ctx.manager, bert, AttentionInput(TEXT))
    result.tokens[3] = "</script><b>x</b>"  # user text inside bertviz's JSON
    for options, count in ((BertvizOptions(), 5), (BertvizOptions(vendor_base="gradio_api/file=/a/vendor"), 2)):
        for view in (head_view_html(result, 1, options), model_view_html(result, options)):
            doc = view.document
            assert script_urls(doc) == []
            assert "cdnjs" not in doc
            scripts = parse_scripts(doc)
            assert len(scripts) == count
            assert not any(s["src"] and re.match(r"https?:", s["src"]) for s in scripts)
            # the token did not end the script element early: bertviz's code is whole in the last script
            assert "requirejs(['jquery', 'd3']" in scripts[-1]["text"] and "<\\/script><b>x" in scripts[-1]["text"]
            assert scripts[-1]["text"].rstrip().endswith("});")
    inline = head_view_html(result, 0).document
    assert "jQuery v2.2.4" in inline and "d3js.org v5.7.0" in inline and "RequireJS 2.3.6" in inline
    served = head_view_html(result, 0, BertvizOptions(vendor_base="gradio_api/file=/x/vendor")).document
    assert '<script src="gradio_api/file=/x/vendor/require.min.js">' in served
    assert "d3: 'gradio_api/file=/x/vendor/d3.min'" in served
    pair = extract(ctx.manager, bert, AttentionInput(TEXT, "It was tired."))
    pair_doc = head_view_html(pair, 0).document
    assert pair.sentence_b_start and '<select id="filter">' in pair_doc  # bertviz's A/B filter
    assert parse_scripts(pair_doc)[-1]["text"].count('"name": "Sentence B -> Sentence A"') == 1
    frame = iframe(head_view_html(result, 0))
    assert frame.startswith('<iframe class="bertviz-frame"') and 'sandbox="allow-scripts"' in frame
    assert "srcdoc=" in frame and "<script" not in frame  # escaped inside the attribute


def test_bertviz_views_respect_their_budget(ctx, llama) -> None:
    result = extract(ctx.manager, llama, AttentionInput(TEXT * 8, max_tokens=96))
    options = BertvizOptions(head_lines=4 * 48 * 48, head_max_values=4 * 48 * 48, model_lines=2 * 4 * 20 * 20)
    head = head_view_html(result, 1, options)
    model = model_view_html(result, options)
    # the head view draws one layer: 4 heads x 48^2 lines; the weights of one layer fit the embedding budget
    assert head.tokens == 48 and head.layers == [1]
    assert model.tokens == 20
    assert any("first 48 of 96" in str(note) for note in head.notes)
    assert any("layers 1-1 of 0-1" in str(note) for note in head.notes)
    both = head_view_html(result, 1, BertvizOptions(head_lines=4 * 48 * 48, head_max_values=2 * 4 * 48 * 48))
    assert both.tokens == 48 and both.layers == [0, 1]
    roomy = head_view_html(result, 1, BertvizOptions(head_lines=4 * 96 * 96, head_max_values=2 * 4 * 96 * 96))
    assert roomy.tokens == 96 and roomy.layers == [0, 1] and roomy.notes == []
    params = head.document.split("const params = ", 1)[1].split("\n", 1)[0]
    assert "[1.0,0,0,0" in params and not re.search(r"[\[,]0\.0[,\]]", params)  # zeros compacted (causal mask)
    assert params.endswith("]};") and params.count('"attn"') == 1  # bertviz's duplicate in a comment is dropped


def test_compact_numbers_keeps_strings() -> None:
    text = json.dumps({"attn": [[0.0, 0.05, 0.0, 0.0, 0.0], [1.0, 0.0]], "t": ["a, 0.0", 'q"x, 0.0']})
    out = compact_numbers(text)
    assert '"attn": [[0,0.05,0,0,0],[1.0,0]]' in out
    assert '"a, 0.0"' in out and '"q\\"x, 0.0"' in out
    assert json.loads(out) == json.loads(text)


def test_difference_of_a_model_with_itself_is_zero(ctx, bert) -> None:
    first = extract(ctx.manager, bert, AttentionInput(TEXT))
    second = extract(ctx.manager, bert, AttentionInput(TEXT))
    comparison = compare(first, second)
    assert comparison.diff.shape == first.attentions.shape
    assert np.all(comparison.diff == 0)
    assert all(row["mean_tv_distance"] == 0 for row in comparison.top_heads())


def test_adapter_changes_attention_of_its_base(ctx, llama) -> None:
    ref = make_adapter_run(ctx, llama, "lora-attn")
    base = extract(ctx.manager, llama, AttentionInput(TEXT))
    tuned = extract(ctx.manager, ref, AttentionInput(TEXT))
    assert tuned.model == ref and tuned.tokens == base.tokens and tuned.causal
    comparison = compare(base, tuned)
    assert np.abs(comparison.diff).max() > 1e-4
    top = comparison.top_heads(3)
    assert top[0]["mean_tv_distance"] > 0 and top[0]["mean_tv_distance"] >= top[-1]["mean_tv_distance"]
    np.testing.assert_allclose(tuned.attentions.sum(axis=-1), 1.0, atol=1e-4)


def test_classification_adapter_changes_attention_of_its_base(ctx, tiny_root) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    base = str(tiny_root / "tiny-bert-cls")
    torch.manual_seed(2)
    lora = LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "key"], init_lora_weights=False)
    peft_model = get_peft_model(AutoModelForSequenceClassification.from_pretrained(base), lora)
    folder = ctx.config.runs_dir / "cls-attn"
    peft_model.save_pretrained(folder / "adapter")
    meta = {"task": "classification", "base_model": base, "status": "complete", "labels": ["neg", "pos"]}
    (folder / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    tuned = extract(ctx.manager, "run:cls-attn", AttentionInput(TEXT))
    plain = extract(ctx.manager, base, AttentionInput(TEXT))
    assert ctx.manager.load("run:cls-attn", attn_implementation="eager").kind == "seq-cls"
    assert not tuned.causal and np.abs(compare(plain, tuned).diff).max() > 1e-4


def test_models_with_different_tokenizers_are_refused(ctx, bert, llama) -> None:
    with pytest.raises(InputError, match="different tokens"):
        compare(extract(ctx.manager, bert, AttentionInput(TEXT)), extract(ctx.manager, llama, AttentionInput(TEXT)))


def test_long_input_is_capped_with_a_note(ctx, bert) -> None:
    result = extract(ctx.manager, bert, AttentionInput(TEXT * 20, max_tokens=16))
    assert result.num_tokens == 16 and result.truncated and result.total_tokens > 16
    expected = f"The input has {result.total_tokens} tokens; only the first 16 were kept (limit 16)."
    assert str(result.notes[0]) == expected
    assert "only the first 16 were kept" in notes_markdown(result)
    # tiny-bert encodes 256 positions, so a 512 request is lowered with a note
    big = extract(ctx.manager, bert, AttentionInput(TEXT * 60, max_tokens=10_000))
    assert big.num_tokens == 256 and big.max_tokens == 256
    assert any("at most 256 positions" in str(note) for note in big.notes)
    short = extract(ctx.manager, bert, AttentionInput(TEXT))
    assert not short.truncated and short.notes == []


def test_bad_input_is_a_clear_error(ctx, bert) -> None:
    with pytest.raises(InputError, match="Type a text"):
        extract(ctx.manager, bert, AttentionInput("   "))
    with pytest.raises(InputError, match="whole number"):
        extract(ctx.manager, bert, AttentionInput(TEXT, max_tokens="many"))
    with pytest.raises(InputError, match="spaCy"):
        extract(ctx.manager, "spacy-en-sm", AttentionInput(TEXT))


def test_rollout_pool_and_token_profile(ctx, bert) -> None:
    result = extract(ctx.manager, bert, AttentionInput(TEXT))
    rolled = rollout(result.attentions)
    assert rolled.shape == (result.num_layers, result.num_tokens, result.num_tokens)
    np.testing.assert_allclose(rolled.sum(axis=-1), 1.0, atol=1e-4)
    identity = np.broadcast_to(np.eye(5), (3, 2, 5, 5))
    np.testing.assert_allclose(rollout(identity)[-1], np.eye(5))
    assert pool(np.ones((10, 10)), 4).shape == (4, 4)
    np.testing.assert_allclose(pool(np.ones((10, 10)), 4), 1.0)
    profile = token_profile(result, 1, 2, 3)
    np.testing.assert_allclose(profile["attends_to"], result.attentions[1, 2, 3], atol=1e-7)
    np.testing.assert_allclose(profile["attended_by"], result.attentions[1, 2, :, 3], atol=1e-7)


def test_all_views_build_for_decoder_and_encoder_decoder(ctx, llama, tiny_root) -> None:
    result = extract(ctx.manager, llama, AttentionInput(TEXT))
    views = build_views(result, Selection(layer=1, head=-1, token=2))
    heat = views.plots.head.data[0]
    z = np.asarray(heat.z, dtype=float)
    assert np.isnan(z[0, 1]) and not np.isnan(z[1, 0])  # the causal mask is shown as gaps
    assert list(heat.x) == result.labels and "mean over heads" in views.plots.head.layout.title.text
    assert views.html_bytes > 0 and views.plots.grid.data[0].z.shape[0] > result.num_tokens
    t5 = extract(ctx.manager, str(tiny_root / "tiny-t5"), AttentionInput(TEXT))
    assert t5.part == "encoder self-attention" and not t5.causal
    np.testing.assert_allclose(t5.attentions.sum(axis=-1), 1.0, atol=1e-4)


def test_position_tables(ctx, bert, llama) -> None:
    learned = position_table(ctx.manager.load(bert, attn_implementation="eager").model)
    assert learned.kind == "learned" and learned.table.shape == (256, 32)
    rotary = position_table(ctx.manager.load(llama, attn_implementation="eager").model, positions=64)
    assert rotary.kind == "rotary" and "RoPE" in str(rotary.description)
    assert rotary.table.shape == (64, 8)  # head size 8: 4 frequencies, cos | sin
    np.testing.assert_allclose(rotary.table, rotary_table(64, 8, 10000.0), atol=1e-5)
    table = sinusoidal_table(50, 16)
    assert table[0, 0] == 0 and table[0, 1] == 1 and np.abs(table).max() <= 1
