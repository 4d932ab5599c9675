"""Generation settings: one dataclass with defaults, hard caps, per-mode sampling defaults and validation."""

from __future__ import annotations

import codecs
import contextlib
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pipelines.errors import InputError
from pipelines.generation.engines import Engine
from pipelines.models.kinds import GENERATION_PRECISIONS, Precision

MAX_NEW_TOKENS_CAP = 1024  # never more new tokens than this, whatever the model's context
MAX_STOP_STRINGS = 8
MAX_STOP_CHARS = 50


class Mode(StrEnum):
    """How the prompt is formatted: the model's chat template, raw text, or chat when there is a template."""

    AUTO = "auto"
    CHAT = "chat"
    COMPLETION = "completion"


class StopReason(StrEnum):
    """Why a generation ended."""

    EOS = "eos"
    STOP_STRING = "stop_string"
    STOPPED = "stopped"
    LENGTH = "length"


PRECISIONS = tuple(p.value for p in GENERATION_PRECISIONS)
MODES = tuple(m.value for m in Mode)
SAMPLING_FIELDS = ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty")


@dataclass(frozen=True)
class Sampling:
    """The sampling knobs a mode starts with."""

    do_sample: bool
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Chat samples (greedy decoding of a small chat model loops: "The leaves are bare" x7); completion and the
# benches stay greedy, so their output is reproducible and comparable with ``model.generate``.
MODE_DEFAULTS = MappingProxyType({
    Mode.CHAT: Sampling(do_sample=True, temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.1),
    Mode.COMPLETION: Sampling(do_sample=False, temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.0),
})


def mode_defaults(mode: str) -> Sampling:
    """The sampling defaults of ``mode`` (``auto`` counts as chat: the embedded models have a chat template)."""
    return MODE_DEFAULTS[Mode.COMPLETION if mode == Mode.COMPLETION else Mode.CHAT]


def parse_stop_strings(text: str | list[str] | None) -> list[str]:
    """Stop strings from a list or from text with one per line; ``\\n`` and ``\\t`` escapes are honoured."""
    if not text:
        return []
    items = text if isinstance(text, list) else str(text).splitlines()
    out: list[str] = []
    for item in items:
        item = str(item)
        if "\\" in item:
            with contextlib.suppress(UnicodeDecodeError):
                item = codecs.decode(item, "unicode_escape") if item.isascii() else item
        if item and item not in out:
            out.append(item)
    return out


def _choice(value: Any, allowed: type[StrEnum], key: str) -> StrEnum:
    try:
        return allowed(str(value))
    except ValueError:
        raise InputError(key, value=str(value)[:60], choices=", ".join(m.value for m in allowed)) from None


@dataclass
class GenerationSettings:
    """How to generate; ``validated()`` clamps numbers into range and rejects nonsense.

    The sampling knobs left as ``None`` take the defaults of the mode the prompt is formatted in
    (:data:`MODE_DEFAULTS`): chat samples with a repetition penalty, completion is greedy.
    """

    max_new_tokens: int = 128
    do_sample: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    stop_strings: list[str] = field(default_factory=list)
    seed: int = 0  # -1 draws a random seed (reported in the stats so the answer can be reproduced)
    precision: str = Precision.AUTO
    mode: str = Mode.AUTO  # chat (model's chat template), completion (raw text) or auto (chat when there is a template)
    engine: str = Engine.AUTO  # auto (llama.cpp for a GGUF model on a CPU), transformers or llama.cpp

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GenerationSettings:
        """Build from a (possibly partial) dict, e.g. an API request; unknown keys are an error."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError("generate.error.unknown_settings", names=", ".join(unknown),
                             known=", ".join(sorted(known)))
        if "stop_strings" in data:
            data["stop_strings"] = parse_stop_strings(data["stop_strings"])
        try:
            return cls(**data).validated()
        except (TypeError, ValueError) as exc:
            raise InputError("generate.error.invalid_settings", detail=str(exc)[:200]) from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validated(self) -> GenerationSettings:
        """A copy with every number clamped into its allowed range (unset sampling knobs stay unset)."""
        precision = _choice(self.precision, Precision, "generate.error.unknown_precision")
        mode = _choice(self.mode, Mode, "generate.error.unknown_mode")
        engine = _choice(self.engine, Engine, "generate.error.unknown_engine")
        stops = parse_stop_strings(self.stop_strings)
        if len(stops) > MAX_STOP_STRINGS or any(len(s) > MAX_STOP_CHARS for s in stops):
            raise InputError("generate.error.stop_strings", count=MAX_STOP_STRINGS, chars=MAX_STOP_CHARS)

        def clamp(value: Any, low: float, high: float, kind: type = float) -> Any:
            return None if value is None else min(max(kind(value), low), high)

        return GenerationSettings(
            max_new_tokens=max(1, min(int(self.max_new_tokens), MAX_NEW_TOKENS_CAP)),
            do_sample=None if self.do_sample is None else bool(self.do_sample),
            temperature=clamp(self.temperature, 0.05, 2.0),
            top_p=clamp(self.top_p, 0.05, 1.0),
            top_k=clamp(self.top_k, 0, 1000, int),
            repetition_penalty=clamp(self.repetition_penalty, 1.0, 2.0),
            stop_strings=stops,
            seed=int(self.seed) if int(self.seed) >= 0 else -1,
            precision=precision,
            mode=mode,
            engine=engine,
        )

    def for_mode(self, mode: str) -> GenerationSettings:
        """A copy whose unset sampling knobs take the defaults of ``mode`` (chat or completion)."""
        defaults = mode_defaults(mode).as_dict()
        return replace(self, **{k: defaults[k] for k in SAMPLING_FIELDS if getattr(self, k) is None})

    def sampling_summary(self) -> dict[str, Any]:
        """The sampling knobs actually used (for the stats panel)."""
        resolved = self.for_mode(self.mode)
        if not resolved.do_sample:
            return {"do_sample": False, "repetition_penalty": resolved.repetition_penalty}
        return {k: getattr(resolved, k) for k in SAMPLING_FIELDS}

    def generation_config_overrides(self, max_new_tokens: int) -> dict[str, Any]:
        """Keyword arguments for ``transformers.GenerationConfig`` (sampling knobs only when sampling)."""
        s = self.for_mode(self.mode)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": bool(s.do_sample),
            "repetition_penalty": s.repetition_penalty if s.repetition_penalty != 1.0 else None,
        }
        if s.do_sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k or None)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs
