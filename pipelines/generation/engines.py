"""Which engine answers a causal LM: transformers in this process, or llama.cpp for a GGUF model on a CPU.

``resolve_engine`` turns the user's choice (``auto`` by default) into the engine that will answer; views that need
the model's internals (attention, logit lens, attributions) ask with ``needs_internals=True`` and always get
transformers. :func:`choose_engine` gives the same answer with the GGUF source and a one-line note saying why auto
fell back to transformers (llama_cpp missing, a GPU, a model without a GGUF file).

auto -> llama.cpp for a GGUF-backed model (the embedded SmolLM2, a local ``.gguf`` file, a hub repo with a GGUF file
while the Hub is reachable, a causal-LM run on such a base, its adapter converted to a GGUF LoRA) on a CPU when
``llama_cpp`` imports and the precision is ``auto``; a chosen torch precision (float32, int8, ...) means transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pipelines.errors import InputError
from pipelines.messages import Msg

if TYPE_CHECKING:
    from pipelines.models.llamacpp import GgufSource


class Engine(StrEnum):
    """The engine choice offered for causal LMs."""

    AUTO = "auto"
    TRANSFORMERS = "transformers"
    LLAMACPP = "llama.cpp"


ENGINES = tuple(e.value for e in Engine)


@dataclass(frozen=True)
class EngineChoice:
    """The engine that answers, the GGUF model it runs (llama.cpp), and why auto fell back (a note, or None)."""

    engine: Engine
    source: GgufSource | None = None
    note: Msg | None = None


def choose_engine(ctx: Any, ref: str, engine: str = Engine.AUTO, needs_internals: bool = False,
                  precision: str = "auto") -> EngineChoice:
    """The engine for ``ref`` and this choice; an explicit ``llama.cpp`` that cannot run raises ``InputError``."""
    try:
        wanted = Engine(str(engine or Engine.AUTO))
    except ValueError:
        raise InputError("generate.error.unknown_engine", value=str(engine)[:60], choices=", ".join(ENGINES)) from None
    if wanted == Engine.TRANSFORMERS:
        return EngineChoice(Engine.TRANSFORMERS)
    explicit = wanted == Engine.LLAMACPP
    if needs_internals:
        note = Msg.of("generate.note.engine_internals") if explicit else None
        return EngineChoice(Engine.TRANSFORMERS, note=note)
    if not explicit and str(precision or "auto") != "auto":
        return EngineChoice(Engine.TRANSFORMERS)
    return _llamacpp_choice(ctx, ref, explicit)


def _llamacpp_choice(ctx: Any, ref: str, explicit: bool) -> EngineChoice:
    from pipelines.models.llamacpp import gguf_source, llamacpp_missing

    if ctx.manager.device != "cpu" and not explicit:
        return EngineChoice(Engine.TRANSFORMERS)
    source = gguf_source(ctx.manager, (ref or "").strip() or ctx.config.chat_model)
    if source is None:
        if explicit:
            raise InputError("generate.error.no_gguf", ref=str(ref)[:200])
        return EngineChoice(Engine.TRANSFORMERS)
    missing = llamacpp_missing()
    if missing:
        if explicit:
            raise InputError("generate.error.llamacpp_missing", reason=missing)
        return EngineChoice(Engine.TRANSFORMERS, note=Msg.of("generate.note.llamacpp_missing", reason=missing))
    return EngineChoice(Engine.LLAMACPP, source)


def resolve_engine(ctx: Any, ref: str, engine: str = Engine.AUTO, needs_internals: bool = False,
                   precision: str = "auto") -> Engine:
    """The engine that answers ``ref`` for this choice (see :func:`choose_engine`)."""
    return choose_engine(ctx, ref, engine, needs_internals, precision).engine
