"""Saved settings presets of the Fine-tune tab: plain values in, plain values out."""

from __future__ import annotations

import json
from typing import Any

from components.finetune_handlers import NUMBER_FIELDS
from components.i18n import text
from pipelines.context import AppContext
from pipelines.training.presets import PresetStore, check_name

FOLDER = "presets"  # under the data dir


class PresetHandlers:
    """Save the form's settings under a name; load them back into the form."""

    def __init__(self, ctx: AppContext) -> None:
        self.store = PresetStore(ctx.config.data_dir / FOLDER)

    def names(self) -> list[str]:
        return self.store.names()

    def save(self, name: str, spec_json: str, lang: str = "en") -> tuple[str, list[str], str]:
        """(status line, preset names, the saved name) after saving the form's spec (as made for Start)."""
        saved = check_name(name)
        self.store.save(saved, json.loads(spec_json or "{}"))
        return text("presets.saved", lang, name=saved, folder=str(self.store.folder)), self.names(), saved

    def load(self, name: str | None, lang: str = "en") -> dict[str, Any]:
        """The saved preset as form values: ``numbers`` (NUMBER_FIELDS order), ``targets``, ``checkpointing``,
        ``oversample`` and a status line."""
        data = self.store.load(check_name(name))
        settings = data["settings"]
        return {"numbers": [settings[n] for n in NUMBER_FIELDS],
                "targets": ", ".join(settings.get("target_modules") or []) or "auto",
                "checkpointing": bool(settings.get("gradient_checkpointing")),
                "oversample": bool(settings.get("oversample")),
                "status": text("presets.loaded", lang, name=data.get("name") or name, task=data.get("task", ""))}
