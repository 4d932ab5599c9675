"""Column-name guesses for uploaded tables, one list per role, shared by every tab and the trainer."""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

ROLES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "text": ("text", "sentence", "content", "review", "document", "body", "article", "message", "input"),
    "label": ("label", "labels", "class", "category", "target", "sentiment", "intent", "y"),
    "reference": ("summary", "reference", "highlights", "abstract", "target", "label", "labels", "category", "class"),
    "prompt": ("prompt", "instruction", "question", "input", "query"),
    "response": ("response", "output", "answer", "completion", "target"),
})


def guess_column(columns: Iterable[str], role: str, taken: Iterable[str] = ()) -> str | None:
    """The first column (not in ``taken``) whose name is a usual name for ``role``, compared case-insensitively."""
    skip = set(taken)
    lowered = {c.lower().strip(): c for c in columns if c not in skip}
    for name in ROLES[role]:
        if name in lowered:
            return lowered[name]
    return None
