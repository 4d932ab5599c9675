"""Generation pipeline: determinism, parity with model.generate, stopping, probabilities, chat template, caps."""

from __future__ import annotations

import copy
import threading
from typing import Any

import gradio as gr
import pytest
import torch

from components.generate import build_generate_tab
from pipelines.errors import InputError
from pipelines.generation import GenerationService, GenerationSettings, threads
from pipelines.generation.engine import GenerationEngine
from pipelines.generation.precision import pick, weight_only_int8
from pipelines.generation.presets import PRESETS, apply_preset, is_chinese
from pipelines.generation.render import next_token_figure, token_html
from pipelines.generation.settings import MAX_NEW_TOKENS_CAP, parse_stop_strings
from pipelines.generation.streaming import PieceDecoder
from pipelines.messages import render

PROMPT = "The quick brown fox jumps over the lazy dog and"


@pytest.fixture
def service(ctx) -> GenerationService:
    return GenerationService(ctx)


@pytest.fixture
def tiny(tiny_root) -> str:
    return str(tiny_root / "tiny-llama")


def completion(**kw) -> GenerationSettings:
    return GenerationSettings(**{"mode": "completion", "precision": "float32", "max_new_tokens": 24, **kw})


def test_same_seed_same_output_and_other_seed_differs(service, tiny) -> None:
    sampled = completion(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, seed=123)
    first = service.generate(tiny, PROMPT, sampled)
    again = service.generate(tiny, PROMPT, sampled)
    other = service.generate(tiny, PROMPT, completion(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, seed=7))
    assert [t.id for t in first.tokens] == [t.id for t in again.tokens]
    assert first.text == again.text and first.seed == 123
    assert [t.id for t in first.tokens] != [t.id for t in other.tokens]


def test_random_seed_is_reported_and_reproduces(service, tiny) -> None:
    first = service.generate(tiny, PROMPT, completion(do_sample=True, seed=-1))
    assert first.seed >= 0
    again = service.generate(tiny, PROMPT, completion(do_sample=True, seed=first.seed))
    assert again.text == first.text


def test_greedy_matches_model_generate(service, tiny) -> None:
    engine = service.engine(tiny, "float32")
    ids = engine.encode(PROMPT, chat=False)
    result = engine.generate(ids, completion(max_new_tokens=20))
    with torch.inference_mode():
        expected = engine.model.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False)[0, len(ids):]
    assert [t.id for t in result.tokens] == expected.tolist()
    assert result.stats()["new_tokens"] == len(expected)


def test_pieces_add_up_to_text_and_probabilities_are_valid(service, tiny) -> None:
    result = service.generate(tiny, PROMPT, completion(max_new_tokens=30))
    assert "".join(t.text for t in result.tokens) == result.text
    for token in result.tokens:
        assert 0 < token.prob <= 1
        probs = [p for _, p in token.top]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True)
        assert all(0 < p <= 1 for p in probs)
        assert token.prob == pytest.approx(probs[0], rel=1e-5)  # greedy picks the most likely token
    stats = result.stats()
    assert stats["prompt_tokens"] > 0 and stats["time_to_first_token_s"] > 0 and stats["device"] == "cpu"


def test_stop_string_cuts_the_answer(service, tiny) -> None:
    full = service.generate(tiny, PROMPT, completion(max_new_tokens=30))
    words = [t.text for t in full.tokens[8:] if t.text.strip() and full.text.count(t.text) == 1]
    stop = words[0]
    cut = service.generate(tiny, PROMPT, completion(max_new_tokens=30, stop_strings=[stop]))
    assert cut.stop_reason == "stop_string"
    assert cut.text == full.text[: full.text.index(stop)]
    assert stop not in cut.text and len(cut.tokens) < len(full.tokens)


def test_stop_event_ends_generation_early(service, tiny) -> None:
    event = threading.Event()
    final = None
    for snapshot in service.stream(tiny, PROMPT, completion(max_new_tokens=200), stop_event=event):
        if len(snapshot.tokens) == 3:
            event.set()
        final = snapshot
    assert final is not None and final.done and final.stop_reason == "stopped"
    assert 3 <= len(final.tokens) <= 5


def test_max_new_tokens_capped_by_context_and_hard_cap(service, tiny) -> None:
    assert GenerationSettings(max_new_tokens=10**6).validated().max_new_tokens == MAX_NEW_TOKENS_CAP
    engine = service.engine(tiny, "float32")
    ids = engine.encode(PROMPT, chat=False)
    assert engine.context == 256
    capped, notes = engine.cap_new_tokens(1000, len(ids))
    assert capped == 256 - len(ids) and notes
    with pytest.raises(InputError):
        engine.cap_new_tokens(10, 256)
    stream = service.stream(tiny, PROMPT, completion(max_new_tokens=1000), stop_event=threading.Event())
    first = next(stream)
    stream.close()
    assert first.max_new_tokens == 256 - len(ids) and "capped" in str(first.notes[0])


def test_chat_template_and_completion_default(service, tiny) -> None:
    engine = service.engine(tiny, "float32")
    prepared = service.prepare(engine, "Hello there", "auto", "Be brief.")
    assert prepared.mode == "chat" and "<|im_start|>system\nBe brief." in prepared.prompt
    plain = GenerationEngine(engine.loaded, "float32")
    plain.tokenizer = copy.copy(engine.tokenizer)
    plain.tokenizer.chat_template = None
    assert plain.resolve_mode("auto") == "completion"
    with pytest.raises(InputError):
        plain.resolve_mode("chat")


def test_chat_history_is_trimmed_to_fit_the_context(service, tiny) -> None:
    engine = service.engine(tiny, "float32")
    history = []
    for i in range(12):
        history += [{"role": "user", "content": f"question {i} " * 5}, {"role": "assistant", "content": "ok " * 5}]
    prepared = service.prepare(engine, "last question", "chat", "sys", history)
    assert len(prepared.ids) + 16 <= engine.context and prepared.notes
    assert "last question" in prepared.prompt and "question 0 " not in prepared.prompt


def test_smollm2_chat_uses_its_template_and_answers(service) -> None:
    """Real weights: the embedded SmolLM2 answers a simple question in chat mode (greedy, as chat used to default)."""
    settings = GenerationSettings(max_new_tokens=16, precision="float32", do_sample=False)
    result = service.generate("smollm2-135m-instruct", "What is the capital of France?", settings,
                              system="You are a helpful assistant.")
    assert "<|im_start|>" in result.prompt and result.prompt.rstrip().endswith("<|im_start|>assistant")
    assert "Paris" in result.text
    rows, _ = service.next_tokens("smollm2-135m-instruct", "The capital of France is",
                                  GenerationSettings(mode="completion", precision="float32"))
    assert rows[0]["token"].strip() == "Paris"


def test_next_tokens_sorted_and_plot(service, tiny) -> None:
    rows, prepared = service.next_tokens(tiny, PROMPT, completion())
    probs = [r["prob"] for r in rows]
    assert len(rows) == 20 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
    fig = next_token_figure(rows, "x")
    assert len(fig.data[0].y) == 20 and prepared.mode == "completion"


def test_int8_weight_only_runs_and_stays_close(service, tiny) -> None:
    fp32 = service.engine(tiny, "float32")
    int8 = service.engine(tiny, "int8-weight")
    assert int8.precision == "int8-weight" and int8.model is not fp32.model
    assert fp32.model.model.layers[0].mlp.gate_proj.__class__ is torch.nn.Linear  # the shared model is untouched
    ids = fp32.encode(PROMPT, chat=False)
    result = int8.generate(ids, completion(max_new_tokens=8))
    assert len(result.tokens) == 8 and all(0 < t.prob <= 1 for t in result.tokens)
    quant = weight_only_int8(fp32.model)
    with torch.inference_mode():
        a = fp32.model(torch.tensor([ids[:1]])).logits
        b = quant(torch.tensor([ids[:1]])).logits
    assert torch.allclose(torch.softmax(a, -1), torch.softmax(b, -1), atol=0.02)


def test_auto_precision_measures_once_and_caches(service, tiny) -> None:
    service.precision.held_out = "A short held-out text keeps this test fast on a busy CPU."
    choice = service.precision.choose(tiny)
    assert choice.precision in ("int8-weight", "int8", "bfloat16", "float32")
    assert "float32" in choice.measurements and service.precision.cache_file.is_file()
    assert service.precision.cached(tiny) == choice
    engine = service.engine(tiny, "auto")
    assert engine.precision.startswith("auto: " + choice.precision)


def test_pick_fastest_within_three_percent() -> None:
    measured = {
        "float32": {"ppl": 10.0, "step_s": 0.05},
        "int8": {"ppl": 30.0, "step_s": 0.01},
        "int8-weight": {"ppl": 10.2, "step_s": 0.02},
        "bfloat16": {"ppl": 10.01, "step_s": 0.04},
    }
    assert pick(measured).precision == "int8-weight"
    measured["int8-weight"]["ppl"] = 10.5
    assert pick(measured).precision == "bfloat16"
    assert pick({}).precision == "float32"


def test_settings_parsing_and_validation() -> None:
    assert parse_stop_strings("END\n\\n\\n\nEND") == ["END", "\n\n"]
    settings = GenerationSettings.from_dict({"temperature": 9, "top_p": 0, "stop_strings": "###"})
    assert settings.temperature == 2.0 and settings.top_p == 0.05 and settings.stop_strings == ["###"]
    for bad in ({"bogus": 1}, {"precision": "fp4"}, {"mode": "poem"}, {"max_new_tokens": "many"}):
        with pytest.raises(InputError):
            GenerationSettings.from_dict(bad)


def test_presets_follow_the_input_language() -> None:
    assert set(PRESETS) == {"story", "translation", "summary", "code", "customer_service", "qa"}
    en = apply_preset("translation", "The weather is nice today.")
    zh = apply_preset("translation", "今天天气很好。")
    assert en.language == "en" and "into Chinese" in en.prompt and "The weather" in en.prompt
    assert zh.language == "zh" and "翻译成英文" in zh.prompt and "今天天气很好" in zh.prompt
    for name in PRESETS:
        assert apply_preset(name, "").prompt and apply_preset(name, "", "zh-CN").language == "zh"
        assert is_chinese(apply_preset(name, "", "zh-CN").prompt)
    with pytest.raises(InputError):
        apply_preset("poem", "x")


def test_token_view_html_has_tooltips_and_escapes(service, tiny) -> None:
    result = service.generate(tiny, PROMPT, completion(max_new_tokens=6))
    result.tokens[0].text = "<b>&"
    html = token_html(result.tokens, "probability:")
    assert html.count("tabindex='0'") == 6 and "top-5:" in html and "&lt;b&gt;&amp;" in html
    assert "<script" not in html and "http" not in html


# ---- the tab's handlers, driven directly (compare mode, the API with a Chinese prompt) --------------------------
def _blocks_with_generate_tab(ctx) -> tuple[gr.Blocks, dict]:
    with gr.Blocks() as demo:
        parts = build_generate_tab(ctx)
    return demo, parts


def _handler(demo: gr.Blocks, *, target: Any = None, api_name: str | None = None) -> Any:
    """The BlockFunction wired to ``target``'s click, or the one published as ``api_name``."""
    for block_fn in demo.fns.values():
        if api_name is not None and block_fn.api_name == api_name:
            return block_fn
        if target is not None and any(t[0] == target._id and t[1] == "click" for t in block_fn.targets):
            return block_fn
    raise LookupError(api_name or target)


def _label_key(component: Any) -> str:
    return str(getattr(component.label, "key", component.label))


def test_compare_mode_returns_two_answers(ctx, tiny_root) -> None:
    """The compare handler streams model A's answer, then model B's beside it; both match a plain run."""
    demo, parts = _blocks_with_generate_tab(ctx)
    block_fn = _handler(demo, target=parts["compare"])
    data = {c: c.value for c in block_fn.inputs}
    by_key = {_label_key(c): c for c in block_fn.inputs}
    tiny_a, tiny_b = str(tiny_root / "tiny-llama"), str(tiny_root / "tiny-gpt2")
    data.update({parts["picker"]: tiny_a, by_key["generate.model_b"]: tiny_b, parts["prompt"]: PROMPT,
                 parts["precision"]: "float32", parts["mode"]: "completion", by_key["generate.max_new_tokens"]: 6})
    updates = list(block_fn.fn(data, None, None))
    final = updates[-1]
    assert len(final) == 6
    text_a, _, stats_a, text_b, view_b, stats_b = final
    assert text_a and text_b and text_a != text_b
    new_tokens = render("generate.stat.new_tokens")  # the panel shows translated labels
    assert stats_a[new_tokens] == 6 and stats_b[new_tokens] == 6 and "tabindex" in view_b
    assert any(u[3] is gr.skip() or not isinstance(u[3], str) for u in updates[:-1])  # A streamed first, alone
    service = GenerationService(ctx)
    for ref, text in ((tiny_a, text_a), (tiny_b, text_b)):
        assert service.generate(ref, PROMPT, completion(max_new_tokens=6)).text == text


def test_chinese_prompt_round_trips(ctx) -> None:
    """A Chinese prompt reaches the chat template intact, and the answer's pieces re-assemble with no broken
    characters, through the /generate_details API function (real SmolLM2 weights)."""
    demo, _ = _blocks_with_generate_tab(ctx)
    details = _handler(demo, api_name="generate_details").fn
    question, system = "请用中文写一句关于春天的话。", "你是一个乐于助人的助手。"
    out = details(question, "smollm2-135m-instruct", {"precision": "float32", "max_new_tokens": 12, "do_sample": False},
                  system)
    assert f"<|im_start|>user\n{question}<|im_end|>" in out["prompt"]
    assert f"<|im_start|>system\n{system}<|im_end|>" in out["prompt"]
    pieces = [tok["text"] for tok in out["tokens"]]
    assert "".join(pieces) == out["text"] and "\ufffd" not in out["text"]
    assert is_chinese(out["text"])  # SmolLM2 answers in Chinese here (greedy)
    assert any("English-centred" in note for note in out["stats"]["notes"])  # and the stats say it is English-centred
    tokenizer = GenerationService(ctx).engine("smollm2-135m-instruct", "float32").tokenizer
    decoded = tokenizer.decode([tok["id"] for tok in out["tokens"]], skip_special_tokens=True)
    assert decoded.startswith(out["text"])  # only an unfinished last character may be held back


def test_piece_decoder_holds_split_characters_until_complete(service) -> None:
    """Byte-level BPE splits Chinese characters over tokens: no piece carries half a character."""
    tokenizer = service.engine("smollm2-135m-instruct", "float32").tokenizer
    sentence = "春天来了，花开了。"
    decoder = PieceDecoder(tokenizer)
    pieces = [decoder.add(i)[0] for i in tokenizer(sentence).input_ids]
    assert "".join(pieces) == sentence == decoder.text
    assert "" in pieces and all("\ufffd" not in p for p in pieces)


def test_thread_tuner_keeps_the_faster_thread_count(monkeypatch) -> None:
    """With fake step times: two threads are 10x slower (a busy CPU), so the tuner settles on one thread,
    and tries two again only rarely; when two become faster, it switches back."""
    clock = [0.0]
    monkeypatch.setattr(threads.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(threads, "set_thread_count", lambda n: None)
    monkeypatch.delenv("LMW_GEN_THREADS", raising=False)
    tuner = threads.ThreadTuner((2, 1))
    cost = {2: 0.5, 1: 0.05}

    def decode(steps: int) -> list[int]:
        used = []
        for _ in range(steps):
            used.append(tuner.current)
            clock[0] += cost[tuner.current]
            tuner.tick()
        return used

    tuner.apply()
    tuner.tick()  # the prompt's forward pass
    used = decode(200)
    assert tuner.best == 1 and used[-50:].count(1) >= 48
    assert used.count(2) < 0.2 * len(used)
    cost.update({2: 0.01})  # the load went away
    decode(400)
    assert tuner.best == 2
