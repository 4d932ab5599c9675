"""Click-a-token inspection: the alternatives equal the app's next tokens for the same prefix, the attention of
the step sums to 1 over visible positions and is zero after it, and the attributions cover every earlier token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import InputError
from pipelines.generation.settings import GenerationSettings
from pipelines.insight.token_inspect import TOP_ALTERNATIVES, TokenInspector

PROMPT = "The capital of France is"
ANSWER = " Paris, and the capital of Germany is Berlin."
COMPLETION = {"mode": "completion", "precision": "float32"}


@pytest.fixture
def inspector(ctx) -> TokenInspector:
    return TokenInspector(ctx)


@pytest.mark.parametrize("index", [0, 3])
def test_alternatives_equal_next_tokens_for_the_same_prefix(ctx, inspector, tiny_root: Path, index: int) -> None:
    ref = str(tiny_root / "tiny-llama")
    result = inspector.inspect(ref, PROMPT, ANSWER, index, COMPLETION, steps=8)
    tok = ctx.manager.load(ref, "causal-lm").tokenizer
    answer_ids = tok(ANSWER, add_special_tokens=False)["input_ids"]
    prefix_text = PROMPT + tok.decode(answer_ids[:index])
    settings = GenerationSettings.from_dict(COMPLETION)
    rows, prepared = ctx.generation.next_tokens(ref, prefix_text, settings, k=TOP_ALTERNATIVES)
    assert prepared.ids == tok(PROMPT)["input_ids"] + answer_ids[:index]  # the same prefix, token for token
    assert [r["id"] for r in result.alternatives] == [r["id"] for r in rows]
    np.testing.assert_allclose([r["prob"] for r in result.alternatives], [r["prob"] for r in rows], atol=1e-5)
    assert result.token_id == answer_ids[index] and result.position == len(prepared.ids)


def test_attention_row_sums_to_one_and_is_zero_in_the_future(inspector, tiny_root: Path) -> None:
    result = inspector.inspect(str(tiny_root / "tiny-llama"), PROMPT, ANSWER, 2, COMPLETION, steps=8)
    n = len(result.tokens)
    assert result.attention.shape == (2, n) and result.attention_heads.shape[:2] == (2, 4)
    visible = result.position  # keys 0..position-1 are visible to the query that produced the token
    np.testing.assert_allclose(result.attention[:, :visible].sum(-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(result.attention_heads[:, :, :visible].sum(-1), 1.0, atol=1e-4)
    assert np.all(result.attention[:, visible:] == 0)
    assert len(result.attributions) == result.position and any(a != 0 for a in result.attributions)
    answer = result.to_json()
    assert answer["tokens"][answer["position"]] == answer["token"] and answer["attention_shape"] == ["layer", "key"]


def test_bad_indexes_fail_with_a_key(inspector, tiny_root: Path) -> None:
    for index in (-1, 99, "x"):
        with pytest.raises(InputError) as info:
            inspector.inspect(str(tiny_root / "tiny-llama"), PROMPT, ANSWER, index, COMPLETION)
        assert info.value.key == "insight.err.token_index"


def test_panel_handlers_read_the_sessions_last_answer(ctx, tiny_root: Path) -> None:
    from components.generate_inspect_handlers import InspectHandlers, attention_scores
    from pipelines.insight.generated import remember_exchange

    handlers = InspectHandlers(ctx)
    with pytest.raises(InputError) as info:
        handlers.inspect_last("s1", 0)
    assert info.value.key == "insight.err.no_exchange"
    ref = str(tiny_root / "tiny-llama")
    tok = ctx.manager.load(ref, "causal-lm").tokenizer
    ids = tok(ANSWER, add_special_tokens=False)["input_ids"]
    remember_exchange(ctx.sessions, "s1", PROMPT, ANSWER, ref, mode="completion", precision="float32",
                          answer_ids=ids)
    view = handlers.inspect_last("s1", 1, attribution="gradient_x_input")
    assert view.result.token_id == ids[1] and (view.layers, view.heads) == (2, 4)
    assert view.attention_html.count("class='lmw-attr'") == view.result.position
    assert view.attribution_html.count("class='lmw-attr'") == view.result.position
    assert "index 1" in view.note and "gradient x input" in view.note
    assert len(view.alternatives.data[0].y) == 10 and Path(view.download).read_text(encoding="utf-8")
    one_head = attention_scores(view.result, 1, 2)
    assert len(one_head) == view.result.position and abs(sum(one_head) - 1) < 1e-4
    answer = handlers.api_json(PROMPT, ANSWER, 1, ref, {"mode": "completion"}, "gradient_x_input")
    assert answer["token_id"] == ids[1] and len(answer["alternatives"]) == 10


def test_prompt_ids_from_generation_are_used_as_read(ctx, inspector, tiny_root: Path) -> None:
    ref = str(tiny_root / "tiny-llama")
    tok = ctx.manager.load(ref, "causal-lm").tokenizer
    formatted = tok("User: hi\nAssistant: The capital of France is")["input_ids"]  # e.g. a chat with history
    given = inspector.inspect(ref, "ignored when ids are given", ANSWER, 1, COMPLETION, steps=4,
                              prompt_ids=formatted)
    assert given.prompt_tokens == len(formatted)
    typed = inspector.inspect(ref, "User: hi\nAssistant: The capital of France is", ANSWER, 1, COMPLETION, steps=4)
    assert [r["id"] for r in given.alternatives] == [r["id"] for r in typed.alternatives]
    assert given.position == typed.position == len(formatted) + 1


def test_a_generated_answer_can_be_inspected_token_by_token(ctx, tiny_root: Path) -> None:
    """The Generate tab remembers each finished local answer; the panel then inspects its tokens as generated."""
    from components.generate_handlers import GenerateHandlers
    from components.generate_inspect_handlers import InspectHandlers

    ref = str(tiny_root / "tiny-llama")
    settings = GenerationSettings(mode="completion", precision="float32", max_new_tokens=6)
    views = list(GenerateHandlers(ctx).stream("s9", ref, PROMPT, settings))
    answer = views[-1]
    assert answer.done
    view = InspectHandlers(ctx).inspect_last("s9", 2, attribution="gradient_x_input")
    generated = ctx.generation.generate(ref, PROMPT, settings)
    assert view.result.token_id == generated.tokens[2].id  # the inspected token is the one the model generated
    assert [r["id"] for r in view.result.alternatives][0] == generated.tokens[2].id  # greedy: it was top-1
