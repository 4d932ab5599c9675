"""Attention weights taken layer by layer (pipelines/attention/capture.py) equal what ``output_attentions=True``
returns, for every tiny architecture, alone and in a padded batch, and the model keeps no layer's weights."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.attention.capture import attention_modules, capture
from pipelines.attention.extract import backbone, load_for_attention
from pipelines.attention.task import _pad


@pytest.mark.parametrize("kind", ["tiny-llama", "tiny-gpt2", "tiny-bert", "tiny-t5"])
def test_layer_by_layer_weights_equal_output_attentions(ctx, tiny_root, kind) -> None:
    import torch

    loaded = load_for_attention(ctx.manager, str(tiny_root / kind))
    module, _ = backbone(loaded.model)
    layers = len(attention_modules(module))
    assert layers == module.config.num_layers if kind == "tiny-t5" else layers == module.config.num_hidden_layers
    short = loaded.tokenizer("the cat sat", return_tensors="pt")
    long = loaded.tokenizer("the cat sat on the mat by the door today", return_tensors="pt")
    encodings = [{k: v for k, v in e.items() if k != "token_type_ids"} for e in (short, long)]
    with torch.inference_mode():
        alone = capture(module, encodings[1], [int(encodings[1]["input_ids"].shape[1])])
        reference = module(**encodings[1], output_attentions=True, return_dict=True).attentions
        assert alone is not None and alone[0].shape == (layers, *reference[0].shape[1:])
        np.testing.assert_allclose(alone[0], np.stack([a[0].numpy() for a in reference]), rtol=1e-5, atol=1e-6)
        padded, lengths = _pad(encodings, loaded.tokenizer)
        batch = capture(module, padded, lengths)
        assert batch is not None and [a.shape[-1] for a in batch] == lengths
        for one, encoding, n in zip(batch, encodings, lengths, strict=True):
            single = module(**encoding, output_attentions=True, return_dict=True).attentions
            np.testing.assert_allclose(one, np.stack([a[0, :, :n, :n].numpy() for a in single]), rtol=1e-4,
                                       atol=1e-5)
        plain = module(**encodings[0], return_dict=True)  # outside capture the hooks take nothing
        assert getattr(plain, "attentions", None) is None


def test_a_copied_model_captures_its_own_weights(ctx, tiny_root) -> None:
    import copy

    import torch

    module, _ = backbone(load_for_attention(ctx.manager, str(tiny_root / "tiny-llama")).model)
    ids = {"input_ids": torch.tensor([[1, 2, 3, 4, 5]])}
    with torch.inference_mode():
        first = capture(module, ids, [5])
        twin = copy.deepcopy(module)
        with torch.no_grad():
            for p in twin.parameters():
                p.mul_(0.5)
        second = capture(twin, ids, [5])
    assert first is not None and second is not None
    assert not np.allclose(first[0], second[0])  # the copy's own weights, not the original's


def test_a_model_without_hookable_modules_falls_back_to_output_attentions(ctx, tiny_root, monkeypatch) -> None:
    """Where capture finds no modules to hook, the task asks transformers for ``output_attentions``: the same
    weights, alone and for several requests in one padded pass."""
    from pipelines.attention import task as attention_task
    from pipelines.attention.task import AttentionInput, AttentionTask

    loaded = load_for_attention(ctx.manager, str(tiny_root / "tiny-llama"))
    job = AttentionTask(loaded)
    batches = [job.preprocess(AttentionInput(text=t)) for t in ("the cat sat", "the cat sat on the mat by the door")]
    hooked = job.forward_many(batches)
    monkeypatch.setattr(attention_task, "capture", lambda *_args: None)
    fallback = job.forward_many(batches)
    import torch

    with torch.inference_mode():  # as Task.__call__ runs it
        alone = job.forward(batches[1])
    for a, b in zip(hooked, fallback, strict=True):
        np.testing.assert_allclose(a["attentions"], b["attentions"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(alone["attentions"], hooked[1]["attentions"], rtol=1e-4, atol=1e-5)
