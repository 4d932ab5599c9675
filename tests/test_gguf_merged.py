"""A causal-LM run merged into one GGUF model file: the base GGUF's metadata and untouched tensors kept, the adapted
weights equal to the merged transformers model's, and llama.cpp giving the merged model's next tokens.

The run is the adapter of tests/test_gguf_lora.py (PEFT on the embedded SmolLM2's de-quantised weights, random B on
q/k/v/o); its merged transformers model is what the Fine-tune tab's Merge button writes (``RunStore.merge``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import InputError, ModelLoadError
from pipelines.models.embedded import ensure_local_folder, source_path
from pipelines.training import gguf_lora, gguf_merged
from pipelines.training.store import RunStore
from tests.test_gguf_lora import PROMPTS, SPEC, TARGETS, llama_logprobs, lora_run, peft_logprobs  # noqa: F401

CORRELATION = 0.75  # the merged model's change to the 50 likeliest tokens, transformers against llama.cpp
LLAMA_OPTIONS = {"n_ctx": 128, "n_threads": 2, "verbose": False}


@pytest.fixture(scope="module")
def merged(lora_run, tmp_path_factory, shared_cache_dir):  # noqa: F811 - the imported fixture
    """(run, merged GGUF file, merged transformers model, tokenizer, PEFT model)."""
    import torch
    from transformers import AutoModelForCausalLM

    run, peft_model, tokenizer = lora_run
    models = tmp_path_factory.mktemp("models")
    folder = RunStore(run.parent).merge(run.name, models, str(ensure_local_folder(SPEC, shared_cache_dir)))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    path = gguf_merged.export_merged_gguf(run, source_path(SPEC), gguf_merged.merged_gguf_path(models, run.name),
                                          name="merged test").path
    return run, path, model, tokenizer, peft_model


def hf_logprobs(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0, -1].double()
    return torch.log_softmax(logits, -1).numpy()


def test_the_file_keeps_the_base_and_holds_the_merged_weights(merged) -> None:
    import gguf

    run, path, model, _, _ = merged
    assert path.name == f"{run.name}-merged.gguf" and path.is_file()
    base, out = gguf.GGUFReader(str(source_path(SPEC))), gguf.GGUFReader(str(path))
    changed = {"general.name", "general.type"}
    for key, field in base.fields.items():  # vocabulary, merges, token types, chat template, hyper-parameters
        if key not in changed and not key.startswith("GGUF."):
            assert out.fields[key].contents() == field.contents(), key
    assert out.fields["general.name"].contents() == "merged test"
    assert out.fields["general.type"].contents() == "model"
    assert out.fields["general.file_type"].contents() == 3  # still mostly Q4_1 (the ffn and the Q8_0 embedding)
    tensors = {t.name: t for t in out.tensors}
    assert [t.name for t in out.tensors] == [t.name for t in base.tensors]
    adapted = {f"blk.{i}.attn_{m}.weight" for i in range(30) for m in ("q", "k", "v", "output")}
    for tensor in base.tensors:
        written = tensors[tensor.name]
        if tensor.name in adapted:
            assert written.tensor_type == gguf.GGMLQuantizationType.F16, tensor.name
        else:  # copied byte for byte, in its own quantisation
            assert written.tensor_type == tensor.tensor_type, tensor.name
            assert np.array_equal(np.asarray(written.data), np.asarray(tensor.data)), tensor.name
    attention = model.model.layers[3].self_attn
    heads, heads_kv = 9, 3

    def weight(name: str) -> np.ndarray:
        return np.asarray(tensors[name].data, dtype=np.float32)

    v = attention.v_proj.weight.detach().numpy()  # rows not permuted
    np.testing.assert_allclose(weight("blk.3.attn_v.weight"), v, atol=2e-3)
    q = gguf_lora.permute_rows(attention.q_proj.weight.detach().numpy(), heads, None)
    np.testing.assert_allclose(weight("blk.3.attn_q.weight"), q, atol=2e-3)
    k = gguf_lora.permute_rows(attention.k_proj.weight.detach().numpy(), heads, heads_kv)
    np.testing.assert_allclose(weight("blk.3.attn_k.weight"), k, atol=2e-3)
    base_q = {t.name: t for t in base.tensors}["blk.3.attn_q.weight"]
    base_q = gguf.quants.dequantize(base_q.data, base_q.tensor_type)
    assert np.abs(weight("blk.3.attn_q.weight") - base_q).max() > 0.01  # the adapter changed it (5x the tolerance)


def test_export_is_reused_until_the_adapter_changes(merged) -> None:
    run, path, _, _, _ = merged
    stamp = path.stat().st_mtime_ns
    again = gguf_merged.export_merged_gguf(run, source_path(SPEC), path)
    assert again.reused and again.path == path and path.stat().st_mtime_ns == stamp
    assert again.msg.key == "gguf_merged.reused"
    weights = run / "adapter" / gguf_lora.WEIGHTS_NAME
    os.utime(weights, ns=(stamp + 10**9, stamp + 10**9))
    fresh = gguf_merged.export_merged_gguf(run, source_path(SPEC), path, name="merged test")
    assert not fresh.reused and fresh.adapted == 30 * len(TARGETS) and path.stat().st_mtime_ns > stamp
    assert not list(path.parent.glob(".*.tmp"))  # written under a temporary name, then renamed


def test_llama_cpp_runs_the_merged_file_like_the_merged_transformers_model(merged, tmp_path) -> None:
    """Issue 14: top next token equal to the merged model's on 5 prompts, log-probability within 0.1, and the change
    against the base goes the same way in both engines; the smaller Q8_0 variant keeps the top tokens too."""
    import llama_cpp

    run, path, model, tokenizer, peft_model = merged
    base = llama_cpp.Llama(model_path=str(source_path(SPEC)), **LLAMA_OPTIONS)
    merged_cpp = llama_cpp.Llama(model_path=str(path), **LLAMA_OPTIONS)
    assert merged_cpp.metadata["general.name"] == "merged test"
    q8 = gguf_merged.export_merged_gguf(run, source_path(SPEC), tmp_path / "q8.gguf", "Q8_0")
    assert q8.size < path.stat().st_size
    merged_q8 = llama_cpp.Llama(model_path=str(q8.path), **LLAMA_OPTIONS)
    for prompt in PROMPTS:
        ids = tokenizer(prompt).input_ids
        hf_base, hf_merged = peft_logprobs(peft_model, ids, False), hf_logprobs(model, ids)
        cpp_base, cpp_merged = llama_logprobs(base, ids), llama_logprobs(merged_cpp, ids)
        top = int(hf_merged.argmax())
        assert int(cpp_merged.argmax()) == top, prompt
        assert int(llama_logprobs(merged_q8, ids).argmax()) == top, prompt
        assert abs(cpp_merged[top] - hf_merged[top]) < 0.1, (prompt, cpp_merged[top], hf_merged[top])
        likely = np.argsort(-hf_base)[:50]
        hf_change, cpp_change = (hf_merged - hf_base)[likely], (cpp_merged - cpp_base)[likely]
        assert np.abs(hf_change).mean() > 0.1, prompt  # the merge does change the distribution
        assert np.corrcoef(hf_change, cpp_change)[0, 1] > CORRELATION, prompt


def _run_folder(root: Path, run_id: str, meta: dict) -> Path:
    folder = root / run_id
    (folder / "adapter").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": "complete", **meta}), encoding="utf-8")
    return folder


def test_the_handler_exports_into_the_models_folder_as_a_llama_cpp_model(merged, ctx) -> None:
    from components.finetune_handlers import FinetuneHandlers
    from pipelines.models.llamacpp import gguf_source

    run = merged[0]
    shutil.copytree(run, ctx.config.runs_dir / "gguf-run")
    seen: list[str] = []
    handlers = FinetuneHandlers(ctx)
    said = handlers.export_gguf("gguf-run", "zh-CN", lambda _f, desc: seen.append(desc))
    out = ctx.config.models_dir / "gguf-run-merged.gguf"
    assert out.is_file() and str(out) in said and "已导出" in said
    assert any(getattr(d, "msg", None) is not None and d.msg.key == "gguf_merged.progress.tensor" for d in seen)
    source = gguf_source(ctx.manager, str(out))  # typed into a model picker: a GGUF model llama.cpp answers
    assert source is not None and source.path == out.resolve()
    assert "up to date" in handlers.export_gguf("gguf-run", "en")
    ctx.runs.set_owner("gguf-run", "alice")  # with login, only the run's owner may export it
    with pytest.raises(ModelLoadError) as info:
        handlers.export_gguf("gguf-run", "en", None, "bob")
    assert info.value.key == "users.error.not_yours"


def test_refusals_are_keyed(ctx, tiny_root) -> None:
    from components.finetune_handlers import FinetuneHandlers

    handlers = FinetuneHandlers(ctx)
    _run_folder(ctx.config.runs_dir, "tiny-run", {"task": "causal-lm", "base_model": str(tiny_root / "tiny-llama")})
    with pytest.raises(InputError) as info:  # a transformers folder: no GGUF to start from
        handlers.export_gguf("tiny-run")
    assert info.value.key == "gguf_merged.base_not_gguf"
    assert not (ctx.config.models_dir / "tiny-run-merged.gguf").exists()
    _run_folder(ctx.config.runs_dir, "cls-run", {"task": "classification", "base_model": "minilm-l6"})
    with pytest.raises(InputError) as info:
        handlers.export_gguf("cls-run")
    assert info.value.key == "gguf_lora.not_causal"
    folder = _run_folder(ctx.config.runs_dir, "lm-run", {"task": "causal-lm", "base_model": SPEC.name})
    with pytest.raises(ModelLoadError) as info:  # no adapter weights in the folder
        gguf_merged.export_merged_gguf(folder, source_path(SPEC), ctx.config.models_dir / "x.gguf")
    assert info.value.key == "gguf_lora.no_adapter"
    with pytest.raises(InputError) as info:
        gguf_merged.export_merged_gguf(folder, source_path(SPEC), ctx.config.models_dir / "x.gguf", "Q4_0")
    assert info.value.key == "gguf_merged.bad_type"


@pytest.mark.browser
def test_export_button_in_the_runs_panel_and_the_file_answers_in_generate(page, app_server, lora_run) -> None:  # noqa: F811
    """The browser flow: pick the run, click the export button, read the path; that path then answers through the
    Generate API on llama.cpp, with the file's quantisation as its precision."""
    from gradio_client import Client
    from playwright.sync_api import expect

    from tests.conftest import open_tab

    data = Path(app_server["log"]).parent
    run_id = "gguf-ui-run"
    shutil.copytree(lora_run[0], data / "runs" / run_id)
    client = Client(app_server["url"], verbose=False)
    try:
        page.reload()
        page.locator("#app-title").wait_for(timeout=60_000)
        open_tab(page, "Fine-tune")
        page.locator("#ft-refresh").click()
        expect(page.locator("#ft-runs")).to_contain_text(run_id, timeout=15_000)
        page.locator("#ft-run-pick input").click()
        page.get_by_role("option", name=run_id, exact=True).click()
        page.locator("#ft-export-gguf").click()
        out = data / "models" / f"{run_id}-merged.gguf"
        expect(page.locator("#ft-action")).to_contain_text(str(out), timeout=180_000)
        expect(page.locator("#ft-run-errors")).to_have_text("")
        assert out.is_file()
        settings = {"mode": "completion", "max_new_tokens": 4, "do_sample": False}
        answer = client.predict("The capital of France is", str(out), settings, "", api_name="/generate_details")
        assert answer["stats"]["engine"] == "llama.cpp" and answer["stats"]["precision"] == "Q4_1"
        assert answer["text"].strip()
    finally:
        client.predict(run_id, api_name="/delete_run")
