"""Generation's auto precision weighs the prompt (time to first token) as well as decoding, decides on medians of
interleaved paired timings with a margin, and never re-uses a decision cached by an older version or elsewhere."""

from __future__ import annotations

import json

import pytest

from pipelines.generation import precision
from pipelines.models import precision_probe


def entry(ppl: float, **ratios: float) -> dict[str, float]:
    return {"ppl": ppl, "step_s": 0.05, "prefill_s": 0.5, **ratios}


def test_a_faster_decoder_with_a_slower_prompt_is_not_picked() -> None:
    """Issue 14: bfloat16 decoded 1.15x faster but its prefill was ~5x slower (TTFT 0.52 s -> 2.52 s)."""
    fp32 = entry(10.0, decode_ratio=1.0, prefill_ratio=1.0, request_ratio=1.0)
    measured = {"float32": fp32, "bfloat16": entry(10.0, decode_ratio=1.15, prefill_ratio=0.2, request_ratio=0.9)}
    assert precision.pick(measured).precision == "float32"
    measured["int8-weight"] = entry(10.2, decode_ratio=1.3, prefill_ratio=0.97, request_ratio=1.25)  # fp32 prompt
    assert precision.pick(measured).precision == "int8-weight"
    measured["int8-weight"]["decode_ratio"] = 1.05  # within noise of float32: not worth a switch
    measured["int8-weight"]["request_ratio"] = 1.04
    assert precision.pick(measured).precision == "float32"


def test_the_request_ratio_decides_between_qualifying_candidates() -> None:
    fp32 = entry(10.0, decode_ratio=1.0, prefill_ratio=1.0, request_ratio=1.0)
    measured = {"float32": fp32,
                "bfloat16": entry(10.1, decode_ratio=1.6, prefill_ratio=2.0, request_ratio=1.65),
                "int8-weight": entry(10.2, decode_ratio=1.9, prefill_ratio=1.0, request_ratio=1.5),
                "int8": entry(31.0, decode_ratio=3.0, prefill_ratio=3.0, request_ratio=3.0)}  # perplexity +210 %
    choice = precision.pick(measured)
    assert choice.precision == "bfloat16" and "1.65x" in choice.reason


def test_old_cached_decisions_are_ignored_and_replaced(ctx, tiny_root, tmp_path) -> None:
    ref = str(tiny_root / "tiny-llama")
    cache = tmp_path / "generation_precision.json"
    selector = precision.PrecisionSelector(ctx.manager, cache)
    key = selector._cache_key(ref)
    assert precision.machine_tag() in key and "|cpu|" in key  # measured per CPU, not only per device
    old = {"precision": "bfloat16", "measurements": {"float32": {"ppl": 1, "step_s": 0.068},
                                                      "bfloat16": {"ppl": 1, "step_s": 0.060}}, "reason": "old"}
    cache.write_text(json.dumps({key: old}), encoding="utf-8")  # version 1: a flat {key: decision} file
    assert selector.cached(ref) is None and selector.note(ref) is None
    choice = precision.PrecisionChoice("float32", {"float32": entry(5.0)}, "fp32")
    selector._store(ref, choice)
    data = json.loads(cache.read_text(encoding="utf-8"))
    assert data["version"] == precision.CACHE_VERSION and list(data["decisions"]) == [key]
    assert selector.cached(ref) == choice


def test_interleaved_rounds_alternate_and_ratios_pair_up(monkeypatch) -> None:
    clock, order = [0.0], []

    def run(name: str, seconds: float):
        def go() -> None:
            order.append(name)
            clock[0] += seconds * (10 if len(order) == 3 else 1)  # a burst of load on the third timing

        return go

    monkeypatch.setattr(precision_probe, "time", type("T", (), {"perf_counter": staticmethod(lambda: clock[0])}))
    seconds = precision_probe.interleaved_seconds({"a": run("a", 1.0), "b": run("b", 0.5)}, rounds=4)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    ratios = precision_probe.paired_ratios(seconds, "a")["b"]
    assert ratios == pytest.approx([2.0, 0.2, 2.0, 2.0])
    assert precision_probe.median(ratios) == pytest.approx(2.0)  # the burst does not decide


def test_bfloat16_must_win_at_every_size(monkeypatch) -> None:
    monkeypatch.setattr(precision_probe, "bf16_linear_speedups", lambda _w, rows, **_k: {1: 0.7, 100: 2.4})
    assert not precision_probe.bf16_is_faster(576, (1, 100))  # faster prompts, slower decoding: not a candidate
    monkeypatch.setattr(precision_probe, "bf16_linear_speedups", lambda _w, rows, **_k: {1: 1.3, 100: 2.4})
    assert precision_probe.bf16_is_faster(576, (1, 100))


def test_the_bf16_probe_measures() -> None:
    speedups = precision_probe.bf16_linear_speedups(64, (1, 16), rounds=3, calls=2)
    assert set(speedups) == {1, 16} and all(0 < s < 100 for s in speedups.values())
