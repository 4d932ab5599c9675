"""What a generation returns: plain dataclasses (no torch), shared by the engine, the tab and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.messages import Msg


@dataclass
class TokenInfo:
    """One generated token for the UI: its text, probability and the model's top alternatives."""

    id: int
    text: str
    prob: float
    top: list[tuple[str, float]] = field(default_factory=list)
    special: bool = False
    label: str = ""  # the token's own name, for special tokens (their text is empty)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "prob": self.prob, "top": self.top, "special": self.special}


@dataclass
class GenerationResult:
    """A snapshot of one generation (``done`` marks the final one); times are kept up to date on every token,
    so a snapshot shown when Stop is pressed has its speed and duration too."""

    text: str = ""
    tokens: list[TokenInfo] = field(default_factory=list)
    prompt: str = ""
    prompt_tokens: int = 0
    max_new_tokens: int = 0
    ttft_s: float | None = None
    decode_tokens_per_s: float | None = None
    total_s: float = 0.0
    device: str = "cpu"
    precision: str = ""
    engine: str = ""  # transformers or llama.cpp (remote endpoints leave it empty)
    seed: int = 0
    stop_reason: str = ""
    notes: list[Msg] = field(default_factory=list)
    mode: str = ""  # chat or completion
    dropped_turns: int = 0  # old chat turns left out to fit the model's context
    sampling: dict[str, Any] = field(default_factory=dict)
    done: bool = False

    @property
    def new_tokens(self) -> int:
        return len(self.tokens)

    def stats(self, lang: str = "en") -> dict[str, Any]:
        """Plain numbers for the stats panel and the API (notes rendered in ``lang``)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "max_new_tokens": self.max_new_tokens,
            "time_to_first_token_s": None if self.ttft_s is None else round(self.ttft_s, 3),
            "tokens_per_s": None if self.decode_tokens_per_s is None else round(self.decode_tokens_per_s, 2),
            "total_s": round(self.total_s, 3),
            "device": self.device,
            "precision": str(self.precision),
            "engine": str(self.engine),
            "seed": self.seed,
            "stop_reason": str(self.stop_reason),
            "mode": str(self.mode),
            "dropped_turns": self.dropped_turns,
            "sampling": dict(self.sampling),
            "notes": [note.render(lang) if isinstance(note, Msg) else str(note) for note in self.notes],
        }
