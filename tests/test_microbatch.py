"""Micro-batching (pipelines/tasks/microbatch.py): concurrent requests on one model share one forward pass, each
caller gets exactly its own results in its own order, a failing request fails only its caller, and the caps hold."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.classify_handlers import ClassifyHandlers
from pipelines.context import AppContext
from pipelines.errors import InputError
from pipelines.tasks.classify import ClassifierSpec, make_classifier
from pipelines.tasks.microbatch import MicroBatcher

TEXTS = ["The match ended in a penalty shoot-out.", "Whisk the eggs with a pinch of salt.",
         "Shares fell after the bank raised its rates.", "She scored twice in the second half."]


def together(count: int, call: Callable[[int], Any]) -> list[Any]:
    """``call(i)`` for i in range(count), started at the same moment in ``count`` threads; results (or errors)."""
    barrier = threading.Barrier(count)
    out: list[Any] = [None] * count

    def worker(i: int) -> None:
        barrier.wait()
        try:
            out[i] = call(i)
        except Exception as exc:  # noqa: BLE001 - returned for the test to check
            out[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return out


class Recorder:
    """A batch function that records every call and doubles numbers (fails on a negative one)."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, items: list[int]) -> list[int]:
        with self.lock:
            self.calls.append(list(items))
        if any(item < 0 for item in items):
            raise InputError("classify.empty_text")
        return [item * 2 for item in items]


def test_concurrent_callers_share_one_call_and_keep_their_order() -> None:
    batcher, fn = MicroBatcher(window_s=0.3, max_items=64), Recorder()
    out = together(4, lambda i: batcher.run("model", [10 * i + k for k in range(3)], fn))
    assert len(fn.calls) == 1 and sorted(fn.calls[0]) == sorted(10 * i + k for i in range(4) for k in range(3))
    assert out == [[20 * i + 2 * k for k in range(3)] for i in range(4)]
    assert batcher.batches == 1 and batcher.largest == 4


def test_a_single_caller_runs_alone_and_other_keys_do_not_mix() -> None:
    batcher, fn = MicroBatcher(window_s=0.0), Recorder()
    assert batcher.run("a", [1, 2, 3], fn) == [2, 4, 6]
    assert batcher.run("a", [], fn) == []
    assert fn.calls == [[1, 2, 3]]
    other = Recorder()
    out = together(2, lambda i: batcher.run(("key", i), [i], fn if i == 0 else other))
    assert out == [[0], [2]] and fn.calls[-1] == [0] and other.calls == [[1]]


def test_a_failing_request_fails_only_its_caller() -> None:
    batcher, fn = MicroBatcher(window_s=0.3, max_items=64), Recorder()
    out = together(3, lambda i: batcher.run("model", [-1] if i == 1 else [i, i], fn))
    assert out[0] == [0, 0] and out[2] == [4, 4]
    assert isinstance(out[1], InputError) and out[1].key == "classify.empty_text"


def test_caps_on_items_and_cost_split_the_batches() -> None:
    batcher, fn = MicroBatcher(window_s=0.3, max_items=2), Recorder()
    out = together(4, lambda i: batcher.run("model", [i], fn))
    assert out == [[0], [2], [4], [6]]
    assert len(fn.calls) >= 2 and all(len(call) <= 2 for call in fn.calls)
    costly, fn2 = MicroBatcher(window_s=0.3, max_items=64), Recorder()
    out = together(3, lambda i: costly.run("model", [i], fn2, cost=10, max_cost=15))
    assert out == [[0], [2], [4]] and [len(call) for call in fn2.calls] == [1, 1, 1]


def count_forwards(module: Any) -> tuple[list[int], Any]:
    """Count calls of ``module.forward`` (and the batch size of each); returns (counts, hook handle)."""
    calls: list[int] = []

    def hook(_module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        calls.append(int(ids.shape[0]))

    return calls, module.register_forward_pre_hook(hook, with_kwargs=True)


def classify_together(model: Any, classifiers: list[Any]) -> tuple[list[int], list[dict]]:
    """Classifier ``i`` classifies ``TEXTS[i]``, all at once; the batch sizes of ``model``'s forwards, the results."""
    calls, handle = count_forwards(model)
    try:
        out = together(len(classifiers), lambda i: classifiers[i].classify([TEXTS[i]])[0])
    finally:
        handle.remove()
    return calls, out


def assert_same_results(out: list[dict], alone: list[dict]) -> None:
    for got, want in zip(out, alone, strict=True):
        assert got["label"] == want["label"]
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)


def test_four_concurrent_classify_requests_share_one_forward(ctx: AppContext, tiny_root: Path) -> None:
    """A fine-tuned classifier: 4 users' single texts at once run in one forward, each result as when alone."""
    ctx.config.microbatch_window_ms = 300.0  # a wide window, so the 4 threads surely meet in it
    ref = str(tiny_root / "tiny-bert-cls")
    handlers = ClassifyHandlers(ctx)
    alone = [handlers.predict(text, "finetuned", ref, "", "").prediction for text in TEXTS]
    loaded = ctx.manager.load(ref, "seq-cls", dtype=None)
    calls, handle = count_forwards(loaded.model)
    try:
        out = together(4, lambda i: handlers.predict(TEXTS[i], "finetuned", ref, "", "").prediction)
    finally:
        handle.remove()
    assert calls == [4], calls
    for got, want in zip(out, alone, strict=True):
        assert got.label == want.label
        assert got.scores == pytest.approx(want.scores, abs=1e-5)


def test_concurrent_zero_shot_by_embeddings_share_the_encoder_forward(ctx: AppContext) -> None:
    """Embedding zero-shot with different label sets: the texts still share one encoder forward."""
    batcher = MicroBatcher(window_s=0.3, max_items=16)
    label_sets = ["sports, cooking, finance", "sports, food", "money, games, kitchen", "football, recipes"]
    alone = [make_classifier(ctx.manager, ClassifierSpec("embeddings", "minilm-l6", labels)).classify([text])[0]
             for text, labels in zip(TEXTS, label_sets, strict=True)]
    classifiers = [make_classifier(ctx.manager, ClassifierSpec("embeddings", "minilm-l6", labels), batcher=batcher)
                   for labels in label_sets]
    calls, out = classify_together(ctx.manager.load("minilm-l6", "encoder").model, classifiers)
    assert calls == [4], calls
    assert_same_results(out, alone)
    np.testing.assert_allclose(classifiers[0].encoder.encode(TEXTS), alone_vectors(ctx), atol=1e-5)


def tiny_nli(models_dir: Path, tiny_root: Path) -> str:
    """A tiny random BERT with NLI labels (entailment first), saved in this test's models folder (not beside the
    shared tiny models, where other tests would find an NLI model they must not see)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = models_dir / "tiny-nli"
    if not (folder / "config.json").exists():
        config = BertConfig.from_pretrained(tiny_root / "tiny-bert", num_labels=3,
                                            id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
                                            label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
        BertForSequenceClassification(config).save_pretrained(folder)
        AutoTokenizer.from_pretrained(tiny_root / "tiny-bert").save_pretrained(folder)
    return str(folder)


def test_concurrent_nli_zero_shot_requests_share_forward_passes(ctx: AppContext, tiny_root: Path) -> None:
    """NLI zero-shot with the same labels: 4 users' texts (12 text-label pairs) run in one forward, each result as
    when alone; alone, each request takes a forward of its own 3 pairs."""
    spec = ClassifierSpec("nli", tiny_nli(ctx.config.models_dir, tiny_root), "sports, cooking, finance")
    alone = [make_classifier(ctx.manager, spec).classify([text])[0] for text in TEXTS]
    batcher = MicroBatcher(window_s=0.3, max_items=16)
    classifier = make_classifier(ctx.manager, spec, batcher=batcher)
    calls, out = classify_together(ctx.manager.load(spec.model, "seq-cls").model, [classifier] * 4)
    assert calls == [12], calls
    assert_same_results(out, alone)


def alone_vectors(ctx: AppContext) -> np.ndarray:
    from pipelines.tasks.embeddings import get_encoder

    return np.stack([get_encoder(ctx.manager).encode([text])[0] for text in TEXTS])


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-bert"])
def test_concurrent_attention_requests_share_one_forward(ctx: AppContext, tiny_root: Path, model: str) -> None:
    """Texts of different lengths (padded in the batch): each caller's weights are those of a run alone."""
    from pipelines.attention import AttentionInput, extract, load_for_attention

    ref = str(tiny_root / model)
    requests = [AttentionInput(text, "Who scored?" if i == 3 else "", 64) for i, text in enumerate(TEXTS)]
    alone = [extract(ctx.manager, ref, request) for request in requests]
    batcher = MicroBatcher(window_s=0.3, max_items=8)
    loaded = load_for_attention(ctx.manager, ref)
    calls, handle = count_forwards(loaded.model.base_model if hasattr(loaded.model, "base_model") else loaded.model)
    try:
        out = together(4, lambda i: extract(ctx.manager, ref, requests[i], batcher=batcher))
    finally:
        handle.remove()
    assert calls == [4], calls
    for got, want in zip(out, alone, strict=True):
        assert got.tokens == want.tokens and got.causal == want.causal
        assert got.sentence_b_start == want.sentence_b_start
        np.testing.assert_allclose(got.attentions, want.attentions, atol=1e-5)


def test_attention_requests_over_the_byte_cap_run_alone(ctx: AppContext, tiny_root: Path) -> None:
    from pipelines.attention import AttentionInput, extract

    ref = str(tiny_root / "tiny-llama")
    batcher = MicroBatcher(window_s=0.3, max_items=8)
    out = together(3, lambda i: extract(ctx.manager, ref, AttentionInput(TEXTS[i], "", 64), batcher=batcher,
                                        max_batch_bytes=1))
    assert all(result.num_tokens > 2 for result in out)
    assert batcher.batches == 3 and batcher.largest == 1
