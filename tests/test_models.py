"""Model manager: embedded models from cache and from scratch, memory cache, eviction, unload, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.errors import ModelLoadError
from pipelines.models import ModelManager
from pipelines.models.devices import detect_device, resolve_dtype
from pipelines.models.embedded import CACHE_MARKER, EMBEDDED, is_cached


def _greedy(loaded, text: str, n: int = 8) -> list[int]:
    ids = loaded.tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        out = loaded.model.generate(**ids, max_new_tokens=n, do_sample=False)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def test_smollm2_loads_from_cache_and_second_load_is_served_from_memory(ctx: AppContext) -> None:
    assert is_cached(EMBEDDED["smollm2-135m-instruct"], ctx.config.cache_dir)
    first = ctx.manager.load("smollm2-135m-instruct")
    assert type(first.model).__name__ == "LlamaForCausalLM"
    assert first.tokenizer.chat_template and "<|im_start|>" in first.tokenizer.chat_template
    assert ctx.manager.load_count == 1
    second = ctx.manager.load("smollm2-135m-instruct")
    assert second is first
    assert ctx.manager.load_count == 1
    reply = first.tokenizer.decode(_greedy(first, "The capital of France is", 6))
    assert "Paris" in reply


def test_smollm2_from_scratch_converts_gguf_once_and_matches_the_cache(tmp_path: Path, ctx: AppContext) -> None:
    fresh = AppConfig(data_dir=tmp_path / "fresh")
    assert not is_cached(EMBEDDED["smollm2-135m-instruct"], fresh.cache_dir)
    steps: list[str] = []
    converted = ModelManager(fresh).load("smollm2-135m-instruct", progress=lambda f, d: steps.append(d))
    assert (fresh.cache_dir / "smollm2-135m-instruct" / CACHE_MARKER).exists()
    assert (fresh.cache_dir / "smollm2-135m-instruct" / "model.safetensors").exists()
    assert any("GGUF" in s for s in steps)
    assert any(getattr(s, "msg", None) and "GGUF" in s.render("zh-CN") for s in steps)  # keyed, translatable
    # No half-written folder is left beside the cache.
    assert [p.name for p in fresh.cache_dir.iterdir()] == ["smollm2-135m-instruct"]
    cached = ctx.manager.load("smollm2-135m-instruct")
    prompt = "Once upon a time"
    assert _greedy(converted, prompt) == _greedy(cached, prompt)


def test_minilm_and_spacy_embedded_models_work_offline(ctx: AppContext) -> None:
    minilm = ctx.manager.load("minilm-l6")
    batch = minilm.tokenizer(["hello world"], return_tensors="pt")
    with torch.inference_mode():
        hidden = minilm.model(**batch).last_hidden_state
    assert hidden.shape[-1] == 384
    nlp = ctx.manager.load("spacy-en-sm").model
    ents = {(e.text, e.label_) for e in nlp("Apple opened an office in Paris.").ents}
    assert ("Paris", "GPE") in ents


def test_local_folders_of_other_architectures_load_with_their_head(ctx: AppContext, tiny_root: Path) -> None:
    assert ctx.manager.load(str(tiny_root / "tiny-gpt2")).kind == "causal-lm"
    assert ctx.manager.load(str(tiny_root / "tiny-bert")).kind == "encoder"
    cls = ctx.manager.load(str(tiny_root / "tiny-bert-cls"))
    assert cls.kind == "seq-cls" and cls.model.config.id2label == {0: "neg", 1: "pos"}
    assert ctx.manager.load(str(tiny_root / "tiny-t5")).kind == "seq2seq"


def test_eviction_frees_least_recently_used_model(config: AppConfig, tiny_root: Path) -> None:
    manager = ModelManager(config)
    llama = manager.load(str(tiny_root / "tiny-llama"))
    config.memory_budget_mb = (llama.nbytes + 1024) / 2**20  # room for one of the two, not both
    bert = manager.load(str(tiny_root / "tiny-bert"))
    assert bert.nbytes < llama.nbytes
    assert not manager.is_loaded(llama.key)
    assert manager.is_loaded(bert.key)
    assert manager.used_bytes == bert.nbytes


def test_unload_drops_the_model_and_next_load_rebuilds(ctx: AppContext, tiny_root: Path) -> None:
    ref = str(tiny_root / "tiny-llama")
    first = ctx.manager.load(ref)
    assert ctx.manager.unload(ref) == 1
    assert ctx.manager.loaded() == []
    again = ctx.manager.load(ref)
    assert again is not first and ctx.manager.load_count == 2


def test_cache_key_separates_dtype_and_attention(ctx: AppContext, tiny_root: Path) -> None:
    ref = str(tiny_root / "tiny-llama")
    fp32 = ctx.manager.load(ref)
    bf16 = ctx.manager.load(ref, dtype="bfloat16")
    eager = ctx.manager.load(ref, attn_implementation="eager")
    assert len({fp32.key, bf16.key, eager.key}) == 3
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    assert eager.model.config._attn_implementation == "eager"


def test_unknown_hub_id_gives_a_clear_error(ctx: AppContext) -> None:
    with pytest.raises(ModelLoadError, match="Hugging Face Hub") as info:
        ctx.manager.load("nobody-here/no-such-model-xyz")
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("/definitely/missing/folder", "does not exist"),
        ("not a model name!", "neither an embedded model"),
        ("", "Choose a model"),
        ("run:no-such-run", "No fine-tuning run"),
    ],
)
def test_bad_references_give_a_clear_error(ctx: AppContext, ref: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        ctx.manager.load(ref)


def test_folder_outside_model_roots_is_refused(ctx: AppContext, tmp_path: Path, tiny_root: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="outside the allowed model folders"):
        ctx.manager.load(str(outside))


def test_adapter_run_loads_on_its_base_model(ctx: AppContext, tiny_root: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_ref = str(tiny_root / "tiny-llama")
    run_dir = ctx.config.runs_dir / "demo-run"
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_ref),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"),
    )
    model.save_pretrained(run_dir / "adapter")
    meta = {"task": "causal-lm", "base_model": base_ref, "status": "complete", "name": "demo"}
    (run_dir / "run.json").write_text(json.dumps(meta))
    assert ("demo (adapter on " + base_ref + ")", "run:demo-run") in ctx.model_choices(("causal-lm",))
    loaded = ctx.manager.load("run:demo-run")
    assert type(loaded.model).__name__ == "PeftModelForCausalLM"
    assert loaded.key.adapter == "demo-run" and loaded.key.model == base_ref
    meta["status"] = "running"
    (run_dir / "run.json").write_text(json.dumps(meta))
    assert "run:demo-run" not in [v for _, v in ctx.model_choices()]


def test_device_detection_and_override() -> None:
    assert detect_device("auto") == ("cuda" if torch.cuda.is_available() else detect_device("mps"))
    assert detect_device("cpu") == "cpu"
    assert resolve_dtype("auto", "cpu") == "float32"
    with pytest.raises(ModelLoadError, match="Unknown precision") as info:
        resolve_dtype("float8", "cpu")
    assert info.value.key == "models.error.unknown_dtype" and "未知精度" in info.value.render("zh-CN")


def test_trust_remote_code_is_off_by_default() -> None:
    assert AppConfig().trust_remote_code is False
    assert AppConfig().allow_pickle_weights is False


def test_out_of_memory_while_loading_is_a_clear_message_and_nothing_is_cached(
    ctx: AppContext, tiny_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    def explode(*_args, **_kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", explode)
    with pytest.raises(ModelLoadError, match="Not enough memory to load") as info:
        ctx.manager.load(str(tiny_root / "tiny-llama"))
    assert "lower precision" in str(info.value)
    assert ctx.manager.loaded() == []
    monkeypatch.undo()
    assert ctx.manager.load(str(tiny_root / "tiny-llama")).kind == "causal-lm"  # and the app keeps serving


def test_a_folder_typed_two_ways_loads_once(ctx: AppContext, tiny_root: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Trailing slash, relative path and a symlink all name the same folder: one cache entry, one build."""
    folder = tiny_root / "tiny-bert"
    first = ctx.manager.load(str(folder))
    assert ctx.manager.load(str(folder) + "/") is first
    monkeypatch.chdir(tiny_root)
    assert ctx.manager.load("./tiny-bert") is first
    link = tiny_root / "bert-link"
    link.symlink_to(folder, target_is_directory=True)
    try:
        assert ctx.manager.load(str(link)) is first
        assert ctx.manager.load_count == 1 and len(ctx.manager.loaded()) == 1
        assert ctx.manager.unload(str(link) + "/") == 1  # unloading by another spelling finds it too
    finally:
        link.unlink()
    assert ctx.manager.loaded() == []


def test_auto_precision_reuses_the_copy_in_memory(ctx: AppContext, tiny_root: Path) -> None:
    """A copy loaded in another precision (e.g. the Generate tab's auto choice) is reused by an 'auto' load."""
    ref = str(tiny_root / "tiny-llama")
    chosen = ctx.manager.load(ref, "causal-lm", dtype="bfloat16")
    assert ctx.manager.load(ref, "causal-lm", dtype="auto") is chosen
    assert ctx.manager.load(ref, None) is chosen  # no dtype means auto too
    assert ctx.manager.load_count == 1 and len(ctx.manager.loaded()) == 1
    fp32 = ctx.manager.load(ref, "causal-lm", dtype="float32")  # an explicit precision is honoured
    assert fp32 is not chosen and ctx.manager.load_count == 2
    assert ctx.manager.load(ref, "causal-lm", dtype="auto") is fp32  # the most recently used copy
