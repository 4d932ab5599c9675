"""The logit lens: the last row is the model's own greedy next token at every position, shapes are layers x
positions, caps come with a note, adapters and the base-vs-adapter comparison work, figures are exportable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import InputError
from pipelines.insight import figures
from pipelines.insight.common import base_reference
from pipelines.insight.logit_lens import LensComparison, LensInput, lens_parts, logit_lens
from tests.test_attention import make_adapter_run

TEXT = "The capital of France is Paris. The capital of Germany is"


def greedy_next(loaded, ids: list[int]) -> list[int]:
    """The model's greedy next token after every prefix ``ids[:i+1]``, each prefix generated on its own."""
    import torch

    model = loaded.model
    out = []
    with torch.inference_mode():
        for i in range(len(ids)):
            generated = model.generate(torch.tensor([ids[: i + 1]]), max_new_tokens=1, do_sample=False,
                                       pad_token_id=0)
            out.append(int(generated[0, -1]))
    return out


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_last_layer_is_the_greedy_next_token_and_shapes_are_layers_by_positions(ctx, tiny_root: Path,
                                                                                 name: str) -> None:
    ref = str(tiny_root / name)
    result = logit_lens(ctx.manager, ref, LensInput(TEXT, 64))
    loaded = ctx.manager.load(ref, "causal-lm")
    ids = loaded.tokenizer(TEXT)["input_ids"]
    layers = loaded.model.config.num_hidden_layers + 1
    assert result.top_probs.shape == result.top_ids.shape == result.final_ranks.shape == (layers, len(ids))
    assert len(result.top_tokens) == layers and all(len(row) == len(ids) for row in result.top_tokens)
    assert result.final_ids == greedy_next(loaded, ids)
    assert np.all(result.final_ranks[-1] == 1)
    assert np.all((result.top_probs > 0) & (result.top_probs <= 1))
    assert np.all(result.final_probs <= result.top_probs + 1e-6)
    assert result.norm in ("norm", "ln_f")


def test_the_norm_and_head_are_found_generically(ctx, tiny_root: Path) -> None:
    for name, norm_name in (("tiny-llama", "norm"), ("tiny-gpt2", "ln_f")):
        loaded = ctx.manager.load(str(tiny_root / name), "causal-lm")
        norm, found, head = lens_parts(loaded.model)
        assert found == norm_name and norm is not None
        assert head is loaded.model.get_output_embeddings()


def test_embedded_smollm_matches_its_greedy_choice(ctx) -> None:
    result = logit_lens(ctx.manager, "smollm2-135m-instruct", LensInput(TEXT, 64))
    loaded = ctx.manager.load("smollm2-135m-instruct", "causal-lm")
    ids = loaded.tokenizer(TEXT)["input_ids"]
    assert result.top_probs.shape == (loaded.model.config.num_hidden_layers + 1, len(ids))
    assert result.final_ids == greedy_next(loaded, ids)
    assert result.final_tokens[4].strip() == "Paris"  # "The capital of France is" -> " Paris"


def test_long_text_is_cut_with_a_note_and_json_is_plain(ctx, tiny_root: Path) -> None:
    result = logit_lens(ctx.manager, str(tiny_root / "tiny-llama"), LensInput(TEXT * 20, 16))
    assert result.num_positions == 16 and result.total_tokens > 16
    answer = result.to_json()
    json.dumps(answer)
    assert answer["truncated"] and "only the first 16 were used" in answer["notes"][0]
    assert np.array(answer["top_probs"]).shape == (3, 16) and answer["layers"][0] == "embeddings"
    assert answer["model"] == str(tiny_root / "tiny-llama") or answer["model"].endswith("tiny-llama")


def test_encoders_and_empty_texts_are_refused_with_keys(ctx, tiny_root: Path) -> None:
    with pytest.raises(InputError) as info:
        logit_lens(ctx.manager, str(tiny_root / "tiny-bert"), LensInput(TEXT))
    assert info.value.key == "insight.err.causal_only"
    with pytest.raises(InputError) as info:
        logit_lens(ctx.manager, str(tiny_root / "tiny-llama"), LensInput("   "))
    assert info.value.key == "insight.err.empty"


def test_adapter_lens_and_comparison_with_its_base(ctx, tiny_root: Path) -> None:
    base = str(tiny_root / "tiny-llama")
    run = make_adapter_run(ctx, base, "lens-adapter")
    assert base_reference(ctx.manager, run) == base and base_reference(ctx.manager, base) is None
    adapted = logit_lens(ctx.manager, run, LensInput(TEXT))
    plain = logit_lens(ctx.manager, base, LensInput(TEXT))
    assert adapted.described.adapter == "run:lens-adapter" and plain.described.adapter is None
    assert not np.allclose(adapted.top_probs, plain.top_probs)  # the adapter changes the hidden states
    rows = LensComparison(plain, adapted).rows()
    assert len(rows) == plain.num_positions
    assert all(0 <= r["base_layer"] < plain.num_layers and 0 <= r["adapter_layer"] < plain.num_layers for r in rows)
    fig = figures.compare_figure(LensComparison(plain, adapted))
    assert [len(trace.y) for trace in fig.data] == [len(rows), len(rows)]


def test_figures_show_tokens_and_download_as_named_png(ctx, tiny_root: Path) -> None:
    result = logit_lens(ctx.manager, str(tiny_root / "tiny-gpt2"), LensInput(TEXT))
    fig = figures.lens_heatmap(result)
    assert np.array(fig.data[0].z).shape == (result.num_layers, result.num_positions)
    assert fig.data[0].text[1][0] == figures._short(result.top_tokens[1][0])
    config = json.loads(fig.to_json())["config"]
    assert config["toImageButtonOptions"]["filename"] == "logit-lens" and config["displayModeBar"]
    rank = json.loads(figures.rank_heatmap(result, "zh-CN").to_json())
    assert rank["config"]["toImageButtonOptions"]["filename"] == "logit-lens-rank"
    assert "排名" in rank["layout"]["title"]["text"]
