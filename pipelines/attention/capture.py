"""Attention weights taken layer by layer while the forward runs.

``output_attentions=True`` makes transformers keep every layer's (batch, heads, tokens, tokens) tensor until the
forward ends: 283 MB for SmolLM2 at 512 tokens, on top of the copy the result keeps. Here forward hooks sit on the
same modules transformers records ``attentions`` from (the model class's ``_can_record_outputs``), and each layer's
weights are copied into the result array and dropped before the next layer runs, so a forward holds one layer's
tensor at a time. A model whose modules cannot be found this way is run the old way (the caller's fallback).
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HOOKED = "_lmw_attention_hooks"  # the backbone's attribute holding its :class:`Hooks`


@dataclass
class Sink:
    """Where one forward's weights go: for each batch row, its first ``n`` tokens (``lengths``)."""

    lengths: list[int]
    layers: int
    arrays: list[np.ndarray] = field(default_factory=list)
    taken: int = 0

    def take(self, weights: Any) -> None:
        """Copy one layer's (batch, heads, q, k) tensor into the arrays (allocated on the first layer)."""
        if self.taken < self.layers:
            if not self.arrays:
                heads = int(weights.shape[1])
                self.arrays = [np.empty((self.layers, heads, n, n), dtype=np.float32) for n in self.lengths]
            for row, (array, n) in enumerate(zip(self.arrays, self.lengths, strict=True)):
                array[self.taken] = weights[row, :, :n, :n].float().cpu().numpy()
        self.taken += 1


@dataclass(eq=False)
class Hooks:
    """One backbone's hooks: the sink of the forward running in this context, and how many modules are hooked."""

    sink: ContextVar[Sink | None] = field(default_factory=lambda: ContextVar("lmw_attention_sink", default=None))
    lock: threading.Lock = field(default_factory=threading.Lock)  # two first requests must not hook twice
    count: int | None = None

    def __deepcopy__(self, memo: dict) -> Hooks:
        """A copied model hooks its own modules on its first capture (a ContextVar cannot be copied)."""
        return Hooks()


def _specs(module: Any) -> list[tuple[type | None, str | None, str | None, int]]:
    """(class, class-name suffix, layer name, output index) for each ``attentions`` recorder of ``module``'s class."""
    recorded = getattr(type(module), "_can_record_outputs", None) or {}
    specs = recorded.get("attentions")
    if specs is None:
        return []
    out = []
    for spec in specs if isinstance(specs, list) else [specs]:
        if isinstance(spec, str):
            out.append((None, spec, None, 1))
        elif isinstance(spec, type):
            out.append((spec, None, None, 1))
        else:  # transformers' OutputRecorder
            out.append((getattr(spec, "target_class", None), getattr(spec, "class_name", None),
                        getattr(spec, "layer_name", None), int(getattr(spec, "index", 1))))
    return out


def attention_modules(module: Any) -> list[tuple[Any, int]]:
    """The submodules of ``module`` whose output ``index`` holds a layer's attention weights, in layer order."""
    from transformers import PreTrainedModel

    specs = _specs(module)
    found = []
    for name, sub in module.named_modules():
        if sub is not module and isinstance(sub, PreTrainedModel):
            return []  # a composite model: its parts record with their own specs
        for target, suffix, layer, index in specs:
            if not ((target is not None and isinstance(sub, target)) or (suffix and name.endswith(suffix))):
                continue
            if layer is not None and "." + layer.strip(".") + "." not in "." + name + ".":
                continue
            found.append((sub, index))
            break
    return found


def install(module: Any) -> Hooks:
    """Hook ``module``'s attention modules once (the hooks do nothing outside :func:`capture`)."""
    hooks = module.__dict__.setdefault(HOOKED, Hooks())  # atomic: every thread gets the same Hooks
    if hooks.count is None:
        with hooks.lock:
            if hooks.count is None:
                hooks.count = _install(module, hooks)
    return hooks


def _install(module: Any, hooks: Hooks) -> int:
    found = attention_modules(module)

    def hook_for(index: int):
        def hook(_mod: Any, _args: Any, output: Any) -> None:
            sink = hooks.sink.get()
            if sink is not None and isinstance(output, tuple) and len(output) > index and output[index] is not None:
                sink.take(output[index])
        return hook

    for sub, index in found:
        sub.register_forward_hook(hook_for(index))
    return len(found)


def capture(module: Any, inputs: dict, lengths: list[int]) -> list[np.ndarray] | None:
    """Run ``module`` on ``inputs`` and return, for each batch row, its (layers, heads, n, n) float32 weights cut to
    its length in ``lengths``; None when this model's attention modules give no weights this way."""
    hooks = install(module)
    layers = hooks.count or 0
    if layers == 0:
        return None
    sink = Sink(lengths, layers)
    token = hooks.sink.set(sink)
    try:
        outputs = module(**inputs, output_attentions=False, return_dict=True)
        del outputs
    finally:
        hooks.sink.reset(token)
    return sink.arrays if sink.taken == layers and sink.arrays else None
