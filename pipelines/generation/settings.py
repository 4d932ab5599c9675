"""Generation settings: one dataclass with defaults, hard caps and validation."""

from __future__ import annotations

import codecs
import contextlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pipelines.errors import InputError

MAX_NEW_TOKENS_CAP = 1024  # never more new tokens than this, whatever the model's context
MAX_STOP_STRINGS = 8
MAX_STOP_CHARS = 50
MAX_PROMPT_CHARS = 20_000
PRECISIONS = ("auto", "float32", "bfloat16", "int8", "int8-weight")
MODES = ("auto", "chat", "completion")


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


@dataclass
class GenerationSettings:
    """How to generate; ``validated()`` clamps numbers into range and rejects nonsense."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.0
    stop_strings: list[str] = field(default_factory=list)
    seed: int = 0  # -1 draws a random seed (reported in the stats so the answer can be reproduced)
    precision: str = "auto"
    mode: str = "auto"  # chat (model's chat template), completion (raw text) or auto (chat when there is a template)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GenerationSettings:
        """Build from a (possibly partial) dict, e.g. an API request; unknown keys are an error."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"Unknown generation setting(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
        if "stop_strings" in data:
            data["stop_strings"] = parse_stop_strings(data["stop_strings"])
        try:
            return cls(**data).validated()
        except (TypeError, ValueError) as exc:
            raise InputError(f"Invalid generation settings: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validated(self) -> GenerationSettings:
        """A copy with every number clamped into its allowed range."""
        if self.precision not in PRECISIONS:
            raise InputError(f"Unknown precision '{self.precision}'; choose one of {', '.join(PRECISIONS)}.")
        if self.mode not in MODES:
            raise InputError(f"Unknown mode '{self.mode}'; choose one of {', '.join(MODES)}.")
        stops = parse_stop_strings(self.stop_strings)
        if len(stops) > MAX_STOP_STRINGS or any(len(s) > MAX_STOP_CHARS for s in stops):
            raise InputError(f"At most {MAX_STOP_STRINGS} stop strings of at most {MAX_STOP_CHARS} characters each.")
        return GenerationSettings(
            max_new_tokens=max(1, min(int(self.max_new_tokens), MAX_NEW_TOKENS_CAP)),
            do_sample=bool(self.do_sample),
            temperature=min(max(float(self.temperature), 0.05), 2.0),
            top_p=min(max(float(self.top_p), 0.05), 1.0),
            top_k=max(0, min(int(self.top_k), 1000)),
            repetition_penalty=min(max(float(self.repetition_penalty), 1.0), 2.0),
            stop_strings=stops,
            seed=int(self.seed) if int(self.seed) >= 0 else -1,
            precision=self.precision,
            mode=self.mode,
        )

    def generation_config_overrides(self, max_new_tokens: int) -> dict[str, Any]:
        """Keyword arguments for ``transformers.GenerationConfig`` (sampling knobs only when sampling)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": self.do_sample,
            "repetition_penalty": self.repetition_penalty if self.repetition_penalty != 1.0 else None,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or None)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs
