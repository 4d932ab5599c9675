"""Precision for generation: fp32, bf16, int8 (dynamic, from the manager), int8-weight (weight-only) and auto.

``auto`` on the CPU measures once per model, on a short held-out text, the perplexity and the decode speed of
every candidate, and picks the fastest whose perplexity stays within 3 % of fp32. The decision is cached in
``<cache_dir>/generation_precision.json`` (per machine: the key holds device and torch version; the
install step measures the embedded SmolLM2 ahead of time). On a GPU, auto keeps the manager's choice (bf16/fp16).

``int8-weight`` keeps the fp32 model for the prompt (prefill, so the first token and the time to first token
are fp32's) and decodes with int8 per-channel weights and bf16 activations through PyTorch's
``_weight_int8pack_mm`` CPU kernel. Measured on SmolLM2-135M (2-core Xeon): dynamic int8 (activations
quantised too) raises perplexity by ~210 % (per-channel weights; ~260 % per-tensor), weight-only int8 by ~2 %;
torchao's Int8WeightOnlyConfig gave the same quality but decoded ~4x slower than fp32 (tensor-subclass
overhead), hence this small module.
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

log = logging.getLogger(__name__)
ProgressFn = Callable[[float, Any], None]  # a description string, or a keyed Msg the UI renders
PPL_TOLERANCE = 0.03
TIMING_ROUNDS = 5
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
        speed = ref32["step_s"] / best["step_s"] if best["step_s"] else 1.0
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
        return f"{base}|{adapter}|{self.manager.device}|torch-{torch.__version__}"

    def cached(self, ref: str) -> PrecisionChoice | None:
        try:
            data = json.loads(self.cache_file.read_text(encoding="utf-8"))
            entry = data[self._cache_key(ref)]
            return PrecisionChoice(entry["precision"], entry["measurements"], entry["reason"])
        except (OSError, ValueError, KeyError, TypeError):
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
        """Perplexity and decoding-step seconds of every CPU candidate."""
        measured: dict[str, dict[str, float]] = {}
        models: dict[str, torch.nn.Module] = {}
        for name in CPU_CANDIDATES:
            try:
                models[name] = self._candidate(base.model, name)
                ppl = perplexity(models[name], base.tokenizer, self.held_out, stepwise=name == "int8-weight")
                measured[name] = {"ppl": ppl, "step_s": math.inf}
            except Exception as exc:  # noqa: BLE001 - a candidate that cannot run is simply not chosen
                models.pop(name, None)
                log.info("Precision %s unavailable for %s: %s", name, ref, exc)
        # Timing rounds interleave the candidates and keep each one's best round, so a burst of load from
        # other processes does not single out one candidate.
        for _ in range(TIMING_ROUNDS):
            for name, model in models.items():
                step = decode_seconds(model, rounds=1)
                measured[name]["step_s"] = min(measured[name]["step_s"], step)
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
            try:
                data = json.loads(self.cache_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            data[self._cache_key(ref)] = {
                "precision": choice.precision, "measurements": choice.measurements, "reason": choice.reason,
            }
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            self.cache_file.write_text(json.dumps(data, indent=1), encoding="utf-8")


def pick(measured: dict[str, dict[str, float]], tolerance: float = PPL_TOLERANCE) -> PrecisionChoice:
    """Fastest candidate with perplexity <= (1 + tolerance) x fp32's; fp32 when nothing else qualifies."""
    ref = measured.get("float32")
    if ref is None:
        return PrecisionChoice("float32", measured, "fp32 (nothing could be measured)")
    limit = ref["ppl"] * (1 + tolerance)
    ok = {k: v for k, v in measured.items() if math.isfinite(v["ppl"]) and v["ppl"] <= limit}
    best = min(ok, key=lambda k: ok[k]["step_s"])
    speedup = ref["step_s"] / ok[best]["step_s"] if ok[best]["step_s"] else 1.0
    change = ok[best]["ppl"] / ref["ppl"] - 1
    return PrecisionChoice(best, measured, f"{best}, {speedup:.2f}x fp32 decode speed, perplexity {change:+.1%}")
