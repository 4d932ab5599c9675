"""Generate tab handlers and the generation service: per-mode defaults, token-level chat trimming, the one stop
path through ctx.sessions, the context-owned compute thread, model B settings, the English-centred-model note,
keyed and translated texts, and a start-up that does not import torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from components.generate_handlers import KIND, GenerateHandlers, ModelBSettings
from pipelines.errors import LimitError
from pipelines.generation import GenerationService, GenerationSettings
from pipelines.generation.presets import PRESETS
from pipelines.generation.render import STAT_KEYS, stats_view
from pipelines.generation.settings import MODES, Mode, StopReason, mode_defaults
from pipelines.generation.threads import ComputeThread
from pipelines.messages import texts

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The quick brown fox jumps over the lazy dog and"
SMOLLM = "smollm2-135m-instruct"


@pytest.fixture
def tiny(tiny_root) -> str:
    return str(tiny_root / "tiny-llama")


@pytest.fixture
def handlers(ctx) -> GenerateHandlers:
    return GenerateHandlers(ctx)


# ---- #18.4: chat samples with a repetition penalty by default; completion and the benches stay greedy -----------
def test_default_chat_settings_sample_with_a_repetition_penalty_and_completion_is_greedy(ctx, tiny) -> None:
    chat, completion = mode_defaults(Mode.CHAT), mode_defaults(Mode.COMPLETION)
    assert chat.do_sample and 0.5 <= chat.temperature <= 0.9 and chat.top_p == 0.9 and chat.repetition_penalty > 1.0
    assert not completion.do_sample and completion.repetition_penalty == 1.0
    overrides = GenerationSettings().for_mode(Mode.CHAT).generation_config_overrides(8)
    assert overrides["do_sample"] is True and overrides["repetition_penalty"] > 1.0 and overrides["temperature"]
    assert GenerationSettings().for_mode(Mode.COMPLETION).generation_config_overrides(8)["do_sample"] is False
    # Through the service, the way the API's settings=None arrives: the mode decides after the model is loaded.
    service = GenerationService(ctx)
    chatted = service.generate(tiny, "Hello there", GenerationSettings.from_dict({"max_new_tokens": 4}))
    completed = service.generate(tiny, PROMPT, GenerationSettings.from_dict({"max_new_tokens": 4,
                                                                             "mode": "completion"}))
    assert chatted.mode == "chat" and chatted.sampling["do_sample"] is True
    assert chatted.sampling["repetition_penalty"] > 1.0
    assert completed.mode == "completion" and completed.sampling["do_sample"] is False
    assert completed.stats()["sampling"] == {"do_sample": False, "repetition_penalty": 1.0}
    # An explicit choice wins over the mode's default.
    explicit = service.generate(tiny, "Hello there", GenerationSettings(max_new_tokens=4, do_sample=False))
    assert explicit.sampling["do_sample"] is False


def test_untouched_knobs_follow_the_mode_and_touched_knobs_are_kept(handlers) -> None:
    knobs = {"precision": "float32", "mode": "completion", "max_new": 8, "sample": True, "temperature": 1.3,
             "top_p": 0.5, "top_k": 5, "rep": 1.0, "stop_strings": "", "seed": 0}
    untouched = handlers.settings(knobs, touched=False).for_mode(Mode.COMPLETION)
    assert untouched.do_sample is False  # the visible knobs were the other mode's: the mode's defaults win
    touched = handlers.settings(knobs, touched=True)
    assert touched.do_sample is True and touched.temperature == 1.3
    assert handlers.mode_knobs("chat")[0] is True and handlers.mode_knobs("completion")[0] is False


def test_presets_say_what_they_set() -> None:
    en = texts()["en"]
    for name, preset in PRESETS.items():
        description = en[f"generate.preset_desc.{name}"]
        assert f"{preset.settings['max_new_tokens']} new tokens" in description
        if preset.settings.get("do_sample"):
            assert f"temperature {preset.settings['temperature']}" in description
        else:
            assert "greedy" in description


# ---- #12 defect: a long chat that fits the context is trimmed by tokens, not refused by characters ---------------
def test_long_chat_that_fits_smollm2_context_is_not_refused(ctx) -> None:
    service = GenerationService(ctx)
    engine = service.engine(SMOLLM, "float32")
    assert engine.context == 8192
    history = []
    for i in range(24):
        history += [{"role": "user", "content": f"Tell me about topic {i}. " + "The river runs to the sea. " * 30},
                    {"role": "assistant", "content": "It is a calm and wide river. " * 5}]
    chars = sum(len(m["content"]) for m in history)
    assert chars > 20_000  # refused by the old 20,000-character check
    assert len(engine.encode(" ".join(m["content"] for m in history), chat=False)) < 7000  # but fits 8,192 tokens
    prepared = service.prepare(engine, "And the last question?", "chat", "Be brief.", history, reserve=128)
    assert prepared.dropped_turns == 0 and len(prepared.ids) + 128 <= 8192
    assert "topic 0." in prepared.prompt and "And the last question?" in prepared.prompt


def test_too_long_chat_drops_oldest_turns_keeps_system_and_newest_and_says_so(ctx, tiny) -> None:
    service = GenerationService(ctx)
    engine = service.engine(SMOLLM, "float32")
    history = []
    for i in range(80):
        history += [{"role": "user", "content": f"Question {i}: " + "Tell me more about the lighthouse. " * 20},
                    {"role": "assistant", "content": f"Answer {i}: " + "The lamp turns all night long. " * 10}]
    prepared = service.prepare(engine, "NEWEST QUESTION", "chat", "SYSTEM RULES", history, reserve=128)
    assert prepared.dropped_turns > 0 and len(prepared.ids) + 128 <= 8192
    assert "SYSTEM RULES" in prepared.prompt and "NEWEST QUESTION" in prepared.prompt
    assert "Question 0:" not in prepared.prompt and "Question 79:" in prepared.prompt
    assert "<|im_start|>assistant\nAnswer" not in prepared.prompt.split("<|im_start|>user")[0]  # starts at a user turn
    assert any(note.key == "generate.note.dropped_turns" for note in prepared.notes)
    # The stats say how many turns were dropped (the tiny model's context is 256 tokens).
    small = [{"role": "user", "content": "question " * 30}, {"role": "assistant", "content": "answer " * 30}] * 4
    stream = service.stream(tiny, "last", GenerationSettings(max_new_tokens=4, precision="float32"), history=small)
    first = next(stream)
    stream.close()
    assert first.stats()["dropped_turns"] > 0 and any("Dropped" in n for n in first.stats()["notes"])


def test_prompt_over_the_outer_character_cap_is_refused(ctx, tiny) -> None:
    service = GenerationService(ctx)
    engine = service.engine(tiny, "float32")
    huge = [{"role": "user", "content": "x" * (ctx.limits.max_prompt_chars + 1)}]
    with pytest.raises(LimitError):
        service.prepare(engine, "hi", "chat", "", huge)


# ---- #12: one compute thread on the context, one stop path through ctx.sessions ---------------------------------
def test_compute_thread_lives_on_the_context_and_takes_the_pinned_thread_count(config) -> None:
    from pipelines.context import AppContext

    config.gen_threads = 1
    ctx = AppContext.create(config)
    first, second = GenerationService(ctx), GenerationService(ctx)
    assert first.compute is ctx.compute is second.compute
    assert isinstance(ComputeThread(), ComputeThread)  # no-argument constructor
    assert ctx.compute.threads == 1 and not ctx.compute.tuner.enabled
    assert ctx.compute.run(lambda: 41 + 1) == 42


def test_stop_through_sessions_keeps_speed_and_duration(ctx, handlers, tiny) -> None:
    settings = GenerationSettings(mode="completion", precision="float32", max_new_tokens=200)
    final, shown = None, None
    for view in handlers.stream("s1", tiny, PROMPT, settings):
        assert ctx.sessions.get("s1", KIND) is not None  # the run is registered for Stop to find
        if view.stats["new tokens"] >= 3 and shown is None:
            shown = handlers.stop("s1")
            assert shown is not None
            tokens_html, stats = shown
            assert "lmw-tok" in tokens_html
            assert stats["tokens per second"] is not None and stats["total time (s)"] > 0
            assert stats["stop reason"].startswith("stopped")
        final = view
    assert shown is not None and final is not None and final.done
    assert final.stats["stop reason"].startswith("stopped") and final.stats["new tokens"] < 10
    assert ctx.sessions.get("s1", KIND) is None  # forgotten when the run ended
    assert handlers.stop("other-session") is None


def test_model_b_settings_make_a_self_comparison_meaningful(handlers, tiny) -> None:
    a = GenerationSettings(mode="completion", precision="float32", max_new_tokens=6, do_sample=False)
    b = handlers.model_b_settings(a, ModelBSettings(precision="int8-weight", sampling="sample", temperature=1.5))
    assert (b.precision, b.do_sample, b.temperature) == ("int8-weight", True, 1.5)
    assert handlers.model_b_settings(a, ModelBSettings()) == a.validated()
    views = list(handlers.compare("s2", (tiny, tiny), PROMPT, a,
                                  ModelBSettings(sampling="sample", temperature=2.0)))
    left, right = views[-1]
    assert left is not None and right is not None and left.done and right.done
    assert "greedy" in left.stats["sampling"] and "temperature 2.0" in right.stats["sampling"]


# ---- #18.8: the English-centred embedded model says so for Chinese prompts -----------------------------------
def test_chinese_prompt_on_the_embedded_model_gets_a_note(ctx, tiny) -> None:
    service = GenerationService(ctx)
    smollm = service.engine(SMOLLM, "float32")
    zh = service.prepare(smollm, "用一句话介绍你自己。", "chat", "")
    en = service.prepare(smollm, "Introduce yourself in one sentence.", "chat", "")
    other = service.prepare(service.engine(tiny, "float32"), "用一句话介绍你自己。", "chat", "")
    assert [n.key for n in zh.notes] == ["generate.note.english_model"]
    assert not en.notes and not other.notes
    assert "以英语为主" in zh.notes[0].render("zh-CN")


def test_default_model_comes_from_the_config(config) -> None:
    from pipelines.context import AppContext

    config.chat_model = "my-chat-model"
    assert GenerationService(AppContext.create(config)).default_model == "my-chat-model"


# ---- translations of every dynamic key; the compare text keeps <id>; start-up does not import torch -------------
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_every_dynamic_generate_key_has_a_text(lang) -> None:
    table = texts()[lang]
    keys = [f"generate.stat.{k}" for k in STAT_KEYS] + [f"generate.mode.{m}" for m in MODES]
    keys += [f"generate.stop_reason.{r}" for r in [*StopReason, "running"]]
    keys += [f"generate.preset.{p}" for p in PRESETS] + [f"generate.preset_desc.{p}" for p in PRESETS]
    keys += [f"generate.sampling_b.{v}" for v in ("same", "greedy", "sample")]
    assert not [k for k in keys if k not in table]
    view = stats_view({"stop_reason": "eos", "mode": "chat", "device": "cpu", "new_tokens": 3}, lang)
    assert view[table["generate.stat.stop_reason"]] == table["generate.stop_reason.eos"]


def test_compare_description_escapes_the_run_id_placeholder() -> None:
    data = json.loads((ROOT / "assets" / "locales" / "generate.json").read_text(encoding="utf-8"))
    for lang in ("en", "zh-CN"):
        assert "`run:<id>`" in data[lang]["generate.compare_info"]  # code: shown as typed


def test_importing_the_generate_tab_does_not_import_torch() -> None:
    code = ("import sys; import components.generate, components.generate_handlers, pipelines.generation; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_ending_the_browser_session_stops_its_generation(ctx, handlers, tiny) -> None:
    """Closing the page (Sessions.end on unload) stops a running generation through its stop handle."""
    settings = GenerationSettings(mode="completion", precision="float32", max_new_tokens=200)
    stream = handlers.stream("gone", tiny, PROMPT, settings)
    next(stream)
    assert ctx.sessions.end("gone") == 1
    views = list(stream)
    assert views[-1].done and views[-1].stats["stop reason"].startswith("stopped")
    assert views[-1].stats["new tokens"] < 20
