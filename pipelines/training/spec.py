"""The ``finetune`` request: task, base model, column mapping, preset and setting overrides, as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import InputError
from pipelines.training.data import ColumnMapping
from pipelines.training.settings import DEFAULT_MODELS, TrainSettings, check_task, preset

EXAMPLE = (
    '{"task": "classification", "base_model": "minilm-l6", "name": "my run", '
    '"columns": {"text": "text", "label": "label"}, "preset": "quick", "settings": {"epochs": 2}}'
)


@dataclass
class JobSpec:
    """Everything but the file: what to train, on which columns, with which settings."""

    task: str = "classification"
    base_model: str = ""
    name: str = ""
    columns: ColumnMapping = field(default_factory=ColumnMapping)
    settings: TrainSettings = field(default_factory=TrainSettings)

    def to_json(self) -> str:
        return json.dumps({"task": self.task, "base_model": self.base_model, "name": self.name,
                           "columns": self.columns.to_dict(), "settings": self.settings.to_dict()})

    @classmethod
    def from_json(cls, text: str | dict[str, Any] | None) -> JobSpec:
        """Parse the JSON spec (see ``EXAMPLE``); missing fields take the preset's or the task's defaults."""
        if isinstance(text, dict):
            data = text
        else:
            try:
                data = json.loads(text or "{}")
            except ValueError:
                raise InputError("training.spec_not_json", example=EXAMPLE) from None
        if not isinstance(data, dict):
            raise InputError("training.spec_not_object", example=EXAMPLE)
        unknown = sorted(set(data) - {"task", "base_model", "name", "columns", "preset", "settings"})
        if unknown:
            raise InputError("training.spec_unknown_fields", names=", ".join(unknown)[:200])
        task = check_task(str(data.get("task") or "classification"))
        columns = data.get("columns") or {}
        if not isinstance(columns, dict) or set(columns) - {"text", "label", "prompt", "response"}:
            raise InputError("training.spec_bad_columns")
        mapping = ColumnMapping(**{k: (str(v) if v else None) for k, v in columns.items()})
        overrides = data.get("settings") or {}
        if not isinstance(overrides, dict):
            raise InputError("training.spec_bad_settings")
        settings = TrainSettings.from_dict(overrides, base=preset(str(data.get("preset") or "quick"), task))
        base_model = str(data.get("base_model") or DEFAULT_MODELS[task]).strip()
        return cls(task, base_model, str(data.get("name") or "")[:80], mapping, settings)
