"""Views that need a model's internals (attention, logit tools, fine-tuning) cannot use a remote model.

:func:`refuse_remote` raises one keyed sentence for a ``remote:<endpoint>/<model>`` reference, naming the local
model that is the same model when there is one (:func:`local_match`): an embedded model or a fine-tuned run whose
name matches the remote model's id -- e.g. a llama.cpp server started with the embedded SmolLM2 GGUF lists
``.../SmolLM2-135M-Instruct.Q4_1.gguf``, which is ``smollm2-135m-instruct`` here; vLLM's
``HuggingFaceTB/SmolLM2-135M-Instruct`` is too.
"""

from __future__ import annotations

import re
from typing import Any

from pipelines.engines.remote import is_remote, split_ref
from pipelines.errors import InputError

QUANT_SUFFIX = re.compile(r"[.\-_](?:i?q\d\w*|f16|f32|bf16|fp16|fp32|gguf)$", re.IGNORECASE)


def model_key(name: str) -> str:
    """A model id reduced to compare names: its last path part, lower case, without ``.gguf`` and quantisation
    suffixes (``Q4_1``, ``q8_0``, ``f16``), ``_``/``:``/spaces as ``-``."""
    base = re.split(r"[/\\]", str(name or "").strip())[-1].lower()
    base = base.removesuffix(".gguf")
    while True:
        shorter = QUANT_SUFFIX.sub("", base)
        if shorter == base:
            break
        base = shorter
    return re.sub(r"[\s_:]+", "-", base).strip("-")


def _local_names(ctx: Any) -> list[tuple[str, str]]:
    """(name key, reference) of every local model a remote one could be a copy of: embedded models (by their
    name, their GGUF file and their upstream name) and usable fine-tuned runs (by name and id)."""
    from pipelines.models.embedded import EMBEDDED

    names: list[tuple[str, str]] = []
    for spec in EMBEDDED.values():
        upstream = spec.description.split(" ")[0]
        for alias in (spec.name, upstream, spec.subpath if spec.fmt == "gguf" else ""):
            if alias:
                names.append((model_key(alias), spec.name))
    runs = getattr(ctx, "runs", None)
    for run in runs.list() if runs is not None else []:
        for alias in (run.name, run.id, run.reference):
            if alias:
                names.append((model_key(alias), run.reference))
    return names


def local_match(ctx: Any, ref: str) -> str | None:
    """The local model that is the same model as the remote ``ref`` (None when there is none)."""
    _, model = split_ref(ref)
    key = model_key(model)
    if not key:
        return None
    return next((local for name, local in _local_names(ctx) if name == key), None)


def refuse_remote(ctx: Any, ref: str | None) -> None:
    """Raise :class:`InputError` when ``ref`` is remote: its internals cannot be inspected (the matching local
    model is named when there is one)."""
    if not is_remote(ref):
        return
    ref = str(ref).strip()
    local = local_match(ctx, ref)
    if local:
        raise InputError("engines.error.remote_no_internals_local", model=ref[:200], local=local)
    raise InputError("engines.error.remote_no_internals", model=ref[:200])
