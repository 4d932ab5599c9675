"""The Models tab's handlers: plain values in, plain values out (testable without a server)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from components.i18n import request_lang, text
from pipelines.context import AppContext
from pipelines.models import EMBEDDED
from pipelines.models.embedded import is_cached
from pipelines.models.kinds import TRANSFORMERS_KINDS, USER_PRECISIONS, ModelKind, Precision
from pipelines.models.warmup import WarmupState

LOADED_COLUMNS = ("model", "adapter", "kind", "engine", "device", "dtype", "attention", "size_mb", "load_seconds")
EMBEDDED_COLUMNS = ("name", "description", "package", "state")
AUTO = "auto"


def kind_key(kind: str) -> str:
    """The locale key of a model kind's label (``causal-lm`` -> ``models.kind.causal_lm``)."""
    return "models.kind." + str(kind).replace("-", "_")


def kind_choices() -> list[tuple[str, str]]:
    """(label key, value) pairs for the kind dropdown: auto, then every transformers kind."""
    return [("models.kind_auto", AUTO), *((kind_key(k), k.value) for k in TRANSFORMERS_KINDS)]


def dtype_choices() -> list[tuple[str | None, str]]:
    """(label key or None for a technical name shown as is, value) pairs for the precision dropdown."""
    return [("models.dtype_auto" if p == Precision.AUTO else None, p.value) for p in USER_PRECISIONS]


class ModelsHandlers:
    """Load, unload and list models for the Models tab and the ``/load_model``/``/unload_model`` API."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # ---- tables ----------------------------------------------------------------------------------------
    def loaded_table(self, lang: str | None = None) -> pd.DataFrame:
        """The models in memory, with translated headers, kinds and attention kernels."""
        lang = lang or request_lang()
        rows = []
        for info in self.ctx.manager.loaded():
            row = dict(info)
            row["adapter"] = row["adapter"] or ""
            if row["kind"] in ModelKind.__members__.values():
                row["kind"] = text(kind_key(row["kind"]), lang)
            if row["attention"] == "default":
                row["attention"] = text("models.attention_default", lang)
            rows.append([row[c] for c in LOADED_COLUMNS])
        return pd.DataFrame(rows, columns=[text(f"models.col.{c}", lang) for c in LOADED_COLUMNS])

    def embedded_table(self, lang: str | None = None) -> pd.DataFrame:
        """The embedded models: name, translated description, pip package and whether it is ready."""
        lang = lang or request_lang()
        rows = []
        for spec in EMBEDDED.values():
            key = spec.name.replace("-", "_")
            rows.append([spec.name, text(f"models.desc.{key}", lang), spec.pip_name,
                         text(f"models.state.{self._state(spec)}", lang)])
        return pd.DataFrame(rows, columns=[text(f"models.col.{c}", lang) for c in EMBEDDED_COLUMNS])

    def _state(self, spec: Any) -> str:
        if spec.fmt != "gguf":
            return "ready"
        if is_cached(spec, self.ctx.config.cache_dir):
            return "cached"
        warmup = self.ctx.warmup
        return "preparing" if warmup is not None and warmup.state == WarmupState.RUNNING else "first_use"

    # ---- actions -----------------------------------------------------------------------------------------
    def load(self, ref: str, kind_name: str, dtype_name: str, progress: Any = None,
             lang: str | None = None) -> tuple[str, pd.DataFrame, pd.DataFrame]:
        """Load ``ref`` (kind and precision ``auto`` or a name); (status, models in memory, embedded models)."""
        lang = lang or request_lang()
        kind = None if not kind_name or kind_name == AUTO else kind_name
        model = self.ctx.manager.load(ref, kind, dtype=dtype_name or AUTO, progress=progress)
        info = model.describe()
        status = text("models.loaded_msg", lang, model=info["model"], kind=text(kind_key(info["kind"]), lang),
                      dtype=info["dtype"], device=info["device"], seconds=info["load_seconds"])
        return status, self.loaded_table(lang), self.embedded_table(lang)

    def unload(self, ref: str | None, lang: str | None = None) -> tuple[str, pd.DataFrame]:
        """Unload the models matching ``ref`` (all when None); (status, models in memory)."""
        lang = lang or request_lang()
        count = self.ctx.manager.unload(ref)
        return text("models.unloaded_msg", lang, count=count), self.loaded_table(lang)

    def refresh(self, seen: int | None = None, lang: str | None = None) -> tuple[Any, Any, int]:
        """Both tables and the manager's version; ``None`` for the tables when nothing changed since ``seen``."""
        version = self.ctx.manager.version
        if seen is not None and seen == version:
            return None, None, version
        lang = lang or request_lang()
        return self.loaded_table(lang), self.embedded_table(lang), version
