"""The app's caps, with one behaviour per kind of input.

- A **single text** (classify, summarise, extract, attention) over ``max_input_chars`` is cut with a visible note
  (:meth:`Limits.cut`): the user still gets a result and is told what was used.
- A **chat or prompt** is never cut silently: over ``max_prompt_chars`` it is refused (:meth:`Limits.refuse`);
  a long chat that fits the model's context is trimmed by turns, in tokens, by the generation service.
- **Rows and bytes** of an upload over ``max_rows`` / ``max_upload_mb`` are refused by the table reader.
- **Tokens** a model reads: :func:`token_limit` (the smallest of the tokenizer's and config's limits, capped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.errors import LimitError
from pipelines.messages import Msg


@dataclass(frozen=True)
class Limits:
    """Caps shared by every tab and the API (``AppConfig.limits``)."""

    max_input_chars: int = 20_000  # one text to classify, summarise, extract from or visualise
    max_prompt_chars: int = 200_000  # a chat history plus prompt, before token-level trimming
    max_upload_mb: int = 50
    max_rows: int = 50_000
    max_new_tokens: int = 1024

    def cut(self, text: str | None) -> tuple[str, Msg | None]:
        """``text`` cut to ``max_input_chars``, and a note saying so when it was cut."""
        text = text or ""
        if len(text) <= self.max_input_chars:
            return text, None
        return text[: self.max_input_chars], Msg.of("limits.text_cut", used=f"{self.max_input_chars:,}",
                                                       total=f"{len(text):,}")

    def cut_many(self, texts: list[str]) -> list[str]:
        """Every text cut to ``max_input_chars`` (batch rows: the note goes into the batch status once)."""
        return [(x or "")[: self.max_input_chars] for x in texts]

    def refuse(self, text: str | None, limit: int | None = None) -> str:
        """``text`` unchanged, or :class:`LimitError` when it is longer than ``limit`` (default: the prompt cap)."""
        text = text or ""
        limit = limit or self.max_prompt_chars
        if len(text) > limit:
            raise LimitError("limits.text_too_long", chars=f"{len(text):,}", limit=f"{limit:,}")
        return text


def token_limit(loaded: Any, cap: int, default: int = 512) -> int:
    """Max input tokens for a loaded model (duck-typed ``.model``/``.tokenizer``), at most ``cap``.

    Absurd 'no limit' values (``model_max_length`` of 1e30) are ignored.
    """
    cfg = getattr(getattr(loaded, "model", None), "config", None)
    values = [getattr(getattr(loaded, "tokenizer", None), "model_max_length", None)]
    values += [getattr(cfg, name, None) for name in ("max_position_embeddings", "n_positions")]
    usable = [int(v) for v in values if isinstance(v, int) and 0 < v < 1_000_000]
    return min(cap, min(usable) if usable else default)
