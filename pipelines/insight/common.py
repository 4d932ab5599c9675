"""What the insight tasks share: loading a causal LM checked for its kind, the model's description, token caps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.errors import InputError
from pipelines.messages import Msg

if TYPE_CHECKING:
    from pipelines.models.manager import LoadedModel, ModelManager

DEFAULT_LENS_TOKENS = 64
HARD_LENS_TOKENS = 256
MIN_TOKENS = 1


@dataclass(frozen=True)
class Described:
    """Which model produced a view: its name, the adapter (a run id) if any, and the method used."""

    model: str
    adapter: str | None
    method: Msg

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        return {"model": self.model, "adapter": self.adapter, "method": self.method.render(lang)}


def describe(loaded: LoadedModel, method: Msg) -> Described:
    """The model's base name and adapter, from the manager's cache key."""
    base = loaded.ref.base or loaded.ref
    return Described(model=base.name, adapter=(f"run:{loaded.key.adapter}" if loaded.key.adapter else None),
                     method=method)


def base_reference(manager: ModelManager, ref: str) -> str | None:
    """The reference of the base model of an adapter run (None when ``ref`` is not an adapter)."""
    resolved = manager.resolve(ref)
    if resolved.run is None or resolved.base is None:
        return None
    base = resolved.base
    return str(base.location) if base.source == "local" else base.name


def load_causal_lm(manager: ModelManager, ref: str, progress: Any = None) -> LoadedModel:
    """Load ``ref`` as a causal LM, or say plainly that this view needs one."""
    ref = (ref or "").strip()
    if not ref:
        raise InputError("insight.err.no_model")
    resolved = manager.resolve(ref)
    if resolved.is_spacy or str(manager.default_kind(resolved)) != "causal-lm":
        raise InputError("insight.err.causal_only", model=ref)
    return manager.load(ref, "causal-lm", progress=progress)


def clamp_tokens(value: Any, default: int = DEFAULT_LENS_TOKENS, hard: int = HARD_LENS_TOKENS) -> int:
    """A token cap asked for, kept within [MIN_TOKENS, hard] (blank: ``default``)."""
    try:
        cap = int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise InputError("insight.err.token_limit", limit=hard) from None
    return max(MIN_TOKENS, min(cap, hard))


def pretty(token: str) -> str:
    """A decoded token made visible: new lines and tabs as arrows, blanks as a middle dot."""
    shown = token.replace("\n", "\u21b5").replace("\t", "\u21e5")
    return shown if shown.strip() else shown.replace(" ", "\u00b7") or "\u2205"
