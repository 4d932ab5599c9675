"""The Attention tab's insight handlers without a server: the logit-lens view names model, adapter, layers and
method; attention over prompt + answer keeps the boundary; the Generate tab's last exchange is read per session;
every attention figure downloads as a named PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.attention_handlers import AttentionHandlers
from components.attention_insight_handlers import AttentionInsightHandlers, exportable_plots
from pipelines.errors import InputError
from pipelines.insight.generated import remember_exchange
from tests.test_attention import make_adapter_run

TEXT = "The capital of France is Paris. The capital of Germany is"


@pytest.fixture
def insight(ctx) -> AttentionInsightHandlers:
    return AttentionInsightHandlers(ctx)


def test_lens_view_names_model_adapter_layers_and_method(ctx, insight, tiny_root: Path) -> None:
    base = str(tiny_root / "tiny-llama")
    view = insight.lens(base, TEXT, 64)
    assert "tiny-llama" in view.note and "adapter: none" in view.note
    assert "layers 0 (embeddings) to 2" in view.note and "logit lens" in view.note and "final norm: norm" in view.note
    assert view.compare is None
    with pytest.raises(InputError) as info:
        insight.lens(base, TEXT, 64, compare=True)
    assert info.value.key == "insight.err.compare_needs_adapter"
    run = make_adapter_run(ctx, base, "lens-view")
    compared = insight.lens(run, TEXT, 64, compare=True, lang="zh-CN")
    assert "run:lens-view" in compared.note and "方法" in compared.note
    assert compared.compare is not None and len(compared.compare.data) == 2


def test_lens_json_is_the_matrix(insight, tiny_root: Path) -> None:
    answer = insight.lens_json(TEXT * 10, str(tiny_root / "tiny-gpt2"), 20)
    assert answer["num_positions"] == 20 and answer["truncated"]
    assert np.array(answer["top_probs"]).shape == (3, 20) and len(answer["top_tokens"][0]) == 20


def test_generated_answer_keeps_the_boundary_and_marks_it(ctx, insight, tiny_root: Path) -> None:
    ref = str(tiny_root / "tiny-llama")
    prompt, answer = "Write a short line about the sea.", "The sea is wide and blue."
    result = insight.generated(ref, prompt, answer, 256)
    tok = ctx.manager.load(ref, "causal-lm").tokenizer
    start = len(tok(prompt)["input_ids"])
    assert result.sentence_b_start == start
    assert result.num_tokens == start + len(tok(answer, add_special_tokens=False)["input_ids"])
    assert result.causal
    np.testing.assert_allclose(result.attentions.sum(-1), 1.0, atol=1e-4)
    view = AttentionHandlers(ctx).view(result, 0, 0)
    heat, _mean, _grid, _rollout, bars = exportable_plots(view.plots, result)
    lines = [shape for shape in heat.layout.shapes]
    assert len(lines) == 2 and {s.x0 for s in lines if s.x0 is not None} >= {start - 0.5}
    assert bars.layout.shapes and all(s.x0 == start - 0.5 for s in bars.layout.shapes)  # one per subplot
    assert json.loads(heat.to_json())["config"]["toImageButtonOptions"]["filename"] == "attention-head"
    assert any("starts at token" in note.render() for note in result.notes)


def test_a_long_prompt_loses_its_start_not_the_answer(insight, tiny_root: Path) -> None:
    result = insight.generated(str(tiny_root / "tiny-llama"), "word " * 300, "The end of the answer.", 32)
    assert result.num_tokens == 32 and result.truncated
    assert "".join(result.tokens[result.sentence_b_start:]).replace("Ġ", " ").strip() == "The end of the answer."
    assert "prompt tokens dropped" in result.notes[0].render()


def test_last_exchange_is_per_session(ctx, insight) -> None:
    with pytest.raises(InputError) as info:
        insight.last_exchange("s1")
    assert info.value.key == "insight.err.no_exchange"
    remember_exchange(ctx.sessions, "s1", "Hi", "Hello there.", "smollm2-135m-instruct")
    exchange = insight.last_exchange("s1")
    assert (exchange.prompt, exchange.answer, exchange.model) == ("Hi", "Hello there.", "smollm2-135m-instruct")
    with pytest.raises(InputError):
        insight.last_exchange("s2")


def test_an_ordinary_run_has_no_boundary_and_named_downloads(ctx, tiny_root: Path) -> None:
    view = AttentionHandlers(ctx).run(str(tiny_root / "tiny-llama"), TEXT, "", 64, 0, 0)
    figures = exportable_plots(view.plots, view.result)
    names = [json.loads(f.to_json())["config"]["toImageButtonOptions"]["filename"] for f in figures]
    assert names == ["attention-head", "attention-mean", "attention-grid", "attention-rollout", "attention-token"]
    assert all(len(f.layout.shapes) == 0 for f in figures)
