"""Named settings presets saved by the user: one JSON file per name under ``<data dir>/presets/`` holding a
``finetune`` spec's task, preset and settings (and hardware/control when given)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pipelines.errors import InputError
from pipelines.training.settings import TrainSettings

NAME = re.compile(r"^[\w][\w .-]{0,59}$", re.UNICODE)
SUFFIX = ".json"
KEPT = ("task", "settings", "hardware", "control")


def check_name(name: str | None) -> str:
    """The stripped preset name, or :class:`InputError` (empty, too long, or with path characters)."""
    value = (name or "").strip()
    if not value:
        raise InputError("presets.need_name")
    if not NAME.match(value) or value in (".", ".."):
        raise InputError("presets.bad_name", name=value[:60])
    return value


class PresetStore:
    """Saved presets in ``folder`` (created on first save)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        return self.folder / f"{check_name(name)}{SUFFIX}"

    def names(self) -> list[str]:
        """Saved preset names, sorted case-insensitively."""
        if not self.folder.is_dir():
            return []
        return sorted((p.stem for p in self.folder.glob(f"*{SUFFIX}") if NAME.match(p.stem)), key=str.lower)

    def save(self, name: str, spec: dict[str, Any]) -> Path:
        """Write ``spec``'s task, settings (checked), hardware and control under ``name`` (replacing it)."""
        target = self.path(name)
        kept = {k: spec[k] for k in KEPT if k in spec}
        kept["settings"] = TrainSettings.from_dict(kept.get("settings") or {}).to_dict()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"name": name.strip(), **kept}, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(target)
        return target

    def load(self, name: str) -> dict[str, Any]:
        """The saved preset (``settings`` validated again); :class:`InputError` when there is none."""
        target = self.path(name)
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise InputError("presets.not_found", name=name.strip()[:60]) from None
        data["settings"] = TrainSettings.from_dict(data.get("settings") or {}).to_dict()
        return data
