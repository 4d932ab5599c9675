"""Precision for generation: fp32, bf16, int8 (dynamic, from the manager), int8-weight (weight-only) and auto.

``auto`` on the CPU measures once per model and machine, and picks float32 unless a candidate is faster for the
requests users send, prompt included (time to first token) — not for decoding alone: the old auto timed decode
steps only, picked bfloat16 at 1.15x, and the time to first token went from 0.52 s to 2.52 s because bfloat16's
prefill was several times slower than float32's on that CPU. The measurement:

* perplexity of every candidate on a short held-out text (one forward pass; stepwise for ``int8-weight``, whose
  decoding path differs from its prompt path); a candidate more than 3 % above float32 is not timed at all;
* bfloat16 is measured only where a bfloat16 Linear of the model's width is faster than float32 both for one row
  (decode-sized) and for a ``PROMPT_TOKENS`` prompt (prefill-sized) (:mod:`pipelines.models.precision_probe`);
  on CPUs without native bfloat16 (AVX2 only) it is emulated and several times slower;
* ``TIMING_ROUNDS`` interleaved rounds (A B, B A, ...): in each, every candidate runs a ``PROMPT_TOKENS``-token
  prompt (prefill) and ``DECODE_STEPS`` single-token steps (decode). Each round gives paired ratios against
  float32: prefill, decode, and a typical request (prefill + ``REQUEST_TOKENS`` decode steps);
* a candidate qualifies when the **median** request ratio and decode ratio reach ``MIN_SPEEDUP`` (a margin over
  noise) and its median prefill ratio is at least ``PREFILL_FLOOR`` (the time to first token is not worse than
  float32's beyond noise); the one with the best request ratio wins, float32 when none qualifies.

The decision is cached in ``<cache_dir>/generation_precision.json`` (``{"version": CACHE_VERSION, "decisions":
{...}}``; the key holds the model, adapter, device, torch version and the CPU, so a Space moved to other hardware
measures again). Files of an older version (which could hold a bfloat16 decision made from decode steps alone)
are ignored and replaced. The install step measures the embedded SmolLM2 ahead of time. On a GPU, auto keeps the
manager's choice (bf16/fp16).

``int8-weight`` keeps the fp32 model for the prompt (prefill, so the first token and the time to first token
are fp32's) and decodes with int8 per-channel weights and bf16 activations through PyTorch's
``_weight_int8pack_mm`` CPU kernel. Measured on SmolLM2-135M (2-core Xeon): dynamic int8 (activations
quantised too) raises perplexity by ~210 % (per-channel weights; ~260 % per-tensor), weight-only int8 by ~2 %;
torchao's Int8WeightOnlyConfig gave the same quality but decoded ~4x slower than fp32 (tensor-subclass
overhead), hence this small module.

Tried and not kept (SmolLM2-135M, 2-core AMD EPYC with AVX-512-BF16, torch 2.13, paired interleaved decode steps):
int4 weight-only through ``_weight_int4pack_mm_for_cpu`` (groups of 32 with scale and zero, which reproduce the
GGUF's Q4_1 weights exactly) decoded at 27.6 ms a step against 63.2 ms fp32 and 25.8 ms int8-weight (2.32x against
2.46x, load average ~4); under a load average of ~12 both fell below fp32 (0.67x and 0.33x), which is why auto
decides on paired medians with a margin. A static KV cache with ``torch.compile`` was not measured (no time with
the compile cache warm on a shared, loaded 2-core machine); nothing is compiled at install time.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from pipelines.errors import InputError
from pipelines.generation.threads import ComputeThread
from pipelines.messages import Msg
from pipelines.models.manager import LoadedModel, ModelManager, dynamic_int8, model_nbytes
from pipelines.models.precision_probe import machine_tag

log = logging.getLogger(__name__)
ProgressFn = Callable[[float, Any], None]  # a description string, or a keyed Msg the UI renders
PPL_TOLERANCE = 0.03
TIMING_ROUNDS = 6  # interleaved rounds; even, so each candidate goes first as often as float32
PROMPT_TOKENS = 100  # the prompt length timed for prefill (a short chat turn with its template)
DECODE_STEPS = 6
REQUEST_TOKENS = 64  # decode steps of the typical request the overall ratio weighs prefill against
MIN_SPEEDUP = 1.1
PREFILL_FLOOR = 0.95
CACHE_VERSION = 2
CPU_CANDIDATES = ("int8-weight", "int8", "bfloat16", "float32")
HELD_OUT_TEXT = (
    "The old lighthouse keeper climbed the spiral stairs every evening, counting the steps as his father had "
    "taught him. At the top he wiped the salt from the great lens, lit the lamp, and watched the beam sweep "
    "across the dark water. Ships he would never meet passed safely in the night, and in the morning he wrote "
    "their lights in a worn notebook. Years later, when the lamp was replaced by an automatic light, he kept "
    "climbing the stairs, out of habit and out of love."
)


class Int8DecodeLinear(torch.nn.Module):
    """A Linear that uses its fp32 weight for multi-token inputs and int8 weights for single-token decoding."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight  # shared with the fp32 model, not copied
        self.bias = linear.bias
        w = linear.weight.detach().float()
        scales = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        self.register_buffer("qweight", torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous())
        self.register_buffer("scales", scales.to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows > 1:
            return torch.nn.functional.linear(x, self.weight, self.bias)
        y = torch.ops.aten._weight_int8pack_mm(x.reshape(1, -1).to(torch.bfloat16), self.qweight, self.scales)
        y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y + self.bias if self.bias is not None else y


def weight_only_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A structural copy of ``model`` sharing all its tensors, with every Linear made an Int8DecodeLinear."""
    memo = {id(t): t for t in (*model.parameters(), *model.buffers())}
    clone = copy.deepcopy(model, memo)
    for module in list(clone.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(module, name, Int8DecodeLinear(child))
    return clone.eval()


def perplexity(model: Any, tokenizer: Any, text: str = HELD_OUT_TEXT, stepwise: bool = False) -> float:
    """Perplexity of ``model`` on ``text``: one forward pass, or one token at a time with a KV cache
    (``stepwise``, the path decoding takes, which differs from the prompt's path for int8-weight)."""
    ids = tokenizer(text, return_tensors="pt").input_ids[:, :256].to(_device(model))
    with torch.inference_mode():
        if not stepwise:
            return float(math.exp(float(model(input_ids=ids, labels=ids).loss)))
        cache, nll = None, 0.0
        for i in range(ids.shape[1] - 1):
            out = model(input_ids=ids[:, i : i + 1], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            nll -= float(torch.log_softmax(out.logits[0, -1].float(), dim=-1)[ids[0, i + 1]])
    return math.exp(nll / (ids.shape[1] - 1))


def decode_seconds(model: Any, steps: int = 6, rounds: int = 3) -> float:
    """Median over ``rounds`` of the mean seconds of one single-token decoding step after a 32-token prompt."""
    dev = _device(model)
    prompt = torch.arange(100, 132, device=dev).unsqueeze(0)
    timings = []
    with torch.inference_mode():
        for _ in range(rounds):
            out = model(input_ids=prompt, use_cache=True)
            cache, token = out.past_key_values, prompt[:, -1:]
            started = time.perf_counter()
            for _ in range(steps):
                out = model(input_ids=token, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
            timings.append((time.perf_counter() - started) / steps)
    return sorted(timings)[len(timings) // 2]


def prefill_seconds(model: Any, tokens: int = PROMPT_TOKENS) -> float:
    """Seconds of one forward pass over a ``tokens``-token prompt with a fresh cache (the time to first token)."""
    prompt = (torch.arange(tokens, device=_device(model)) % 1000 + 100).unsqueeze(0)
    with torch.inference_mode():
        started = time.perf_counter()
        model(input_ids=prompt, use_cache=True)
    return time.perf_counter() - started


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


@dataclass
class PrecisionChoice:
    """The precision ``auto`` chose for one model, with what was measured."""

    precision: str
    measurements: dict[str, dict[str, float]]
    reason: str


def precision_cache_file(cache_dir: Path) -> Path:
    """Where auto's per-model decisions are kept (beside the embedded models' cache)."""
    return Path(cache_dir) / "generation_precision.json"


class PrecisionSelector:
    """Loads models for generation in a given precision, and resolves ``auto`` by measuring once per model."""

    def __init__(self, manager: ModelManager, cache_file: Path, compute: ComputeThread | None = None) -> None:
        self.manager = manager
        self.compute = compute or ComputeThread()
        self.cache_file = Path(cache_file)
        self.held_out = HELD_OUT_TEXT
        self._lock = threading.Lock()
        self._int8_weight: weakref.WeakKeyDictionary[Any, LoadedModel] = weakref.WeakKeyDictionary()

    def load(self, ref: str, precision: str, progress: ProgressFn | None = None) -> tuple[LoadedModel, str]:
        """(loaded model, concrete precision) for ``ref``; ``auto`` is resolved first (``auto: <precision>``)."""
        label = ""
        if precision == "auto":
            if self.manager.device != "cpu":
                return self.manager.load(ref, "causal-lm", dtype="auto", progress=progress), "auto"
            precision = self.choose(ref, progress).precision
            label = f"auto: {precision}"
        if precision in ("int8", "int8-weight") and self.manager.device != "cpu":
            raise InputError("generate.error.int8_cpu_only")
        if precision == "int8-weight":
            return self._load_int8_weight(ref, progress), label or "int8-weight"
        return self.manager.load(ref, "causal-lm", dtype=precision, progress=progress), label or str(precision)

    def note(self, ref: str) -> Msg | None:
        """What ``auto`` measured for ``ref`` (speed against fp32 and the perplexity change), when it has."""
        choice = self.cached(ref)
        if choice is None or "float32" not in choice.measurements or choice.precision not in choice.measurements:
            return None
        ref32, best = choice.measurements["float32"], choice.measurements[choice.precision]
        speed = _ratios(best, ref32)[0] if best is not ref32 else 1.0
        return Msg.of("generate.note.auto_precision", precision=choice.precision, speedup=f"{speed:.2f}",
                      ppl=f"{best['ppl'] / ref32['ppl'] - 1:+.1%}")

    def _load_int8_weight(self, ref: str, progress: ProgressFn | None) -> LoadedModel:
        base = self.manager.load(ref, "causal-lm", dtype="float32", progress=progress)
        with self._lock:
            hit = self._int8_weight.get(base.model)
            if hit is None:
                model = weight_only_int8(base.model)
                extra = model_nbytes(model) - model_nbytes(base.model)
                hit = replace(base, key=replace(base.key, dtype="int8-weight"), model=model, nbytes=extra)
                self._int8_weight[base.model] = hit
            return hit

    def _cache_key(self, ref: str) -> str:
        loaded_ref = self.manager.resolve(ref)
        base = loaded_ref.base.name if loaded_ref.base else loaded_ref.name
        adapter = loaded_ref.run.id if loaded_ref.run else ""
        machine = machine_tag() if self.manager.device == "cpu" else self.manager.device
        return f"{base}|{adapter}|{self.manager.device}|torch-{torch.__version__}|{machine}"

    def _decisions(self) -> dict[str, Any]:
        """The cached decisions; empty for a missing, unreadable or older-version file."""
        try:
            data = json.loads(self.cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}  # e.g. version 1's decisions, made from decode steps alone (bfloat16 with a 5x slower TTFT)
        decisions = data.get("decisions")
        return decisions if isinstance(decisions, dict) else {}

    def cached(self, ref: str) -> PrecisionChoice | None:
        try:
            entry = self._decisions()[self._cache_key(ref)]
            return PrecisionChoice(entry["precision"], entry["measurements"], entry["reason"])
        except (KeyError, TypeError):
            return None

    def choose(self, ref: str, progress: ProgressFn | None = None, refresh: bool = False) -> PrecisionChoice:
        """The fastest CPU precision whose perplexity is within 3 % of fp32 (measured once, then cached)."""
        with self._lock:
            hit = None if refresh else self.cached(ref)
        if hit is not None:
            return hit
        report = progress or (lambda _f, _d: None)
        base = self.manager.load(ref, "causal-lm", dtype="float32", progress=progress)
        report(0.5, Msg.of("generate.progress.measuring"))
        # In the compute thread, where generation runs, with the thread count it uses.
        measured = self.compute.run(lambda: self._measure(ref, base))
        choice = pick(measured)
        self._store(ref, choice)
        return choice

    def _measure(self, ref: str, base: LoadedModel) -> dict[str, dict[str, float]]:
        """Perplexity, prefill and decode seconds, and paired ratios against float32 of every CPU candidate."""
        from pipelines.models.precision_probe import bf16_is_faster

        measured: dict[str, dict[str, float]] = {}
        models: dict[str, torch.nn.Module] = {}
        limit = math.inf
        for name in ("float32", *(c for c in CPU_CANDIDATES if c != "float32")):
            if name == "bfloat16" and not bf16_is_faster(int(base.model.config.hidden_size), (1, PROMPT_TOKENS)):
                log.info("bfloat16 is slower than float32 here for one row or a prompt: not a candidate")
                continue
            try:
                model = self._candidate(base.model, name)
                ppl = perplexity(model, base.tokenizer, self.held_out, stepwise=name == "int8-weight")
            except Exception as exc:  # noqa: BLE001 - a candidate that cannot run is simply not chosen
                log.info("Precision %s unavailable for %s: %s", name, ref, exc)
                continue
            measured[name] = {"ppl": ppl, "step_s": math.inf, "prefill_s": math.inf}
            limit = ppl * (1 + PPL_TOLERANCE) if name == "float32" else limit
            if ppl <= limit:  # only candidates that keep the quality are worth timing
                models[name] = model
        if "float32" in models:
            for name, timing in _timings(models).items():
                measured[name].update(timing)
        return measured

    @staticmethod
    def _candidate(fp32: torch.nn.Module, name: str) -> torch.nn.Module:
        if name == "float32":
            return fp32
        if name == "int8-weight":
            return weight_only_int8(fp32)
        if name == "bfloat16":
            return copy.deepcopy(fp32).to(torch.bfloat16)
        return dynamic_int8(copy.deepcopy(fp32))

    def _store(self, ref: str, choice: PrecisionChoice) -> None:
        with self._lock:
            decisions = self._decisions()
            decisions[self._cache_key(ref)] = {
                "precision": choice.precision, "measurements": choice.measurements, "reason": choice.reason,
            }
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            data = {"version": CACHE_VERSION, "decisions": decisions}
            self.cache_file.write_text(json.dumps(data, indent=1), encoding="utf-8")


def _timings(models: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Interleaved prefill and decode timings (A B, B A, ...) and their median paired ratios against float32."""
    from pipelines.models.precision_probe import median

    names = list(models)
    for model in models.values():  # first calls create the kernels and caches: not what is compared
        prefill_seconds(model, 8)
        decode_seconds(model, steps=1, rounds=1)
    prefill: dict[str, list[float]] = {name: [] for name in names}
    decode: dict[str, list[float]] = {name: [] for name in names}
    for number in range(TIMING_ROUNDS):
        for name in names if number % 2 == 0 else names[::-1]:
            prefill[name].append(prefill_seconds(models[name]))
            decode[name].append(decode_seconds(models[name], steps=DECODE_STEPS, rounds=1))
    out: dict[str, dict[str, float]] = {}
    for name in names:
        pairs = list(zip(prefill["float32"], decode["float32"], prefill[name], decode[name], strict=True))
        out[name] = {
            "step_s": median(decode[name]), "prefill_s": median(prefill[name]),
            "decode_ratio": median([d32 / d for _p32, d32, _p, d in pairs]),
            "prefill_ratio": median([p32 / p for p32, _d32, p, _d in pairs]),
            "request_ratio": median([(p32 + REQUEST_TOKENS * d32) / (p + REQUEST_TOKENS * d)
                                     for p32, d32, p, d in pairs]),
        }
    return out


def _ratios(entry: dict[str, float], ref: dict[str, float]) -> tuple[float, float, float]:
    """(decode, prefill, request) ratios over float32: the measured medians, or from the seconds when absent."""
    def ratio(key: str) -> float:
        mine, theirs = entry.get(key), ref.get(key)
        return theirs / mine if mine and theirs and math.isfinite(mine) and math.isfinite(theirs) else 1.0

    decode = entry.get("decode_ratio") or ratio("step_s")
    prefill = entry.get("prefill_ratio") or ratio("prefill_s")
    if entry.get("request_ratio"):
        return decode, prefill, entry["request_ratio"]
    if entry.get("prefill_s") and ref.get("prefill_s") and math.isfinite(entry["prefill_s"]):
        request = ((ref["prefill_s"] + REQUEST_TOKENS * ref["step_s"])
                   / (entry["prefill_s"] + REQUEST_TOKENS * entry["step_s"]))
    else:
        request = decode
    return decode, prefill, request


def pick(measured: dict[str, dict[str, float]], tolerance: float = PPL_TOLERANCE) -> PrecisionChoice:
    """The candidate with the best request ratio among those within ``tolerance`` of float32's perplexity whose
    decode and request ratios reach ``MIN_SPEEDUP`` and whose prefill ratio is at least ``PREFILL_FLOOR``;
    float32 when nothing qualifies."""
    ref = measured.get("float32")
    if ref is None:
        return PrecisionChoice("float32", measured, "fp32 (nothing could be measured)")
    limit = ref["ppl"] * (1 + tolerance)
    ok: dict[str, tuple[float, float, float]] = {}
    for name, entry in measured.items():
        ppl = entry.get("ppl")
        if name == "float32" or ppl is None or not math.isfinite(ppl) or ppl > limit:
            continue
        decode, prefill, request = _ratios(entry, ref)
        if decode >= MIN_SPEEDUP and request >= MIN_SPEEDUP and prefill >= PREFILL_FLOOR:
            ok[name] = (decode, prefill, request)
    if not ok:
        return PrecisionChoice("float32", measured, "fp32 (no candidate was faster, prompt included, with margin)")
    best = max(ok, key=lambda name: ok[name][2])
    decode, prefill, request = ok[best]
    change = measured[best]["ppl"] / ref["ppl"] - 1
    return PrecisionChoice(best, measured, f"{best}, {decode:.2f}x fp32 decode speed, {prefill:.2f}x prefill, "
                                           f"{request:.2f}x a {REQUEST_TOKENS}-token answer, perplexity {change:+.1%}")
