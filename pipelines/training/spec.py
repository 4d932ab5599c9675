"""The ``finetune`` request (task, base model, column mapping, preset, setting overrides, hardware and run
control, as JSON) and the run spec the launched child reads from the run folder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import InputError
from pipelines.training.augment import AugmentSettings
from pipelines.training.data import ColumnMapping, DataReport, PreparedData
from pipelines.training.hardware import ControlSettings, HardwareSettings
from pipelines.training.settings import DEFAULT_MODELS, TrainSettings, check_task, preset

EXAMPLE = (
    '{"task": "classification", "base_model": "minilm-l6", "name": "my run", '
    '"columns": {"text": "text", "label": "label"}, "preset": "quick", "settings": {"epochs": 2}, '
    '"hardware": {"device": "auto", "processes": 0, "precision": "auto", "strategy": "ddp"}, '
    '"control": {"checkpoint_every": 0, "keep_checkpoints": 2}}'
)


@dataclass
class JobSpec:
    """Everything but the file: what to train, on which columns, with which settings."""

    task: str = "classification"
    base_model: str = ""
    name: str = ""
    columns: ColumnMapping = field(default_factory=ColumnMapping)
    settings: TrainSettings = field(default_factory=TrainSettings)
    hardware: HardwareSettings = field(default_factory=HardwareSettings)
    control: ControlSettings = field(default_factory=ControlSettings)
    augment: dict[str, Any] = field(default_factory=dict)  # classification: pipelines.training.augment

    def to_json(self) -> str:
        return json.dumps({"task": self.task, "base_model": self.base_model, "name": self.name,
                           "columns": self.columns.to_dict(), "settings": self.settings.to_dict(),
                           "hardware": self.hardware.to_dict(), "control": self.control.to_dict(),
                           **({"augment": self.augment} if self.augment else {})})

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
        unknown = sorted(set(data) - {"task", "base_model", "name", "columns", "preset", "settings", "hardware",
                                      "control", "augment", "probes"})
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
        if data.get("probes") is not None:  # live probes: a top-level list (or text, one per line)
            overrides = {**overrides, "probes": data["probes"]}
        settings = TrainSettings.from_dict(overrides, base=preset(str(data.get("preset") or "quick"), task))
        base_model = str(data.get("base_model") or DEFAULT_MODELS[task]).strip()
        if task.domain:
            from pipelines.training.domain import domain_task

            task = domain_task(task, base_model)
            if not data.get("base_model"):
                base_model = DEFAULT_MODELS[task]
        sections = [data.get("hardware") or {}, data.get("control") or {}]
        if not all(isinstance(section, dict) for section in sections):
            raise InputError("training.spec_bad_settings")
        return cls(task, base_model, str(data.get("name") or "")[:80], mapping, settings,
                   HardwareSettings.from_dict(sections[0]), ControlSettings.from_dict(sections[1]),
                   augment=AugmentSettings.from_dict(data.get("augment")).to_dict())


SPEC_FILE = "spec.json"
DATA_FILE = "data.json"


@dataclass
class RunSpec:
    """What the launched child trains, as written into the run folder (``spec.json``; data in ``data.json``)."""

    run_id: str
    task: str
    base_model: str  # the reference the user picked
    location: str  # a loadable folder or hub id for it
    name: str = ""
    settings: TrainSettings = field(default_factory=TrainSettings)
    hardware: HardwareSettings = field(default_factory=HardwareSettings)
    control: ControlSettings = field(default_factory=ControlSettings)
    plan: dict[str, Any] = field(default_factory=dict)  # the resolved LaunchPlan
    allow_pickle: bool = False

    @property
    def seed(self) -> int:
        return self.settings.seed

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "task": self.task, "base_model": self.base_model, "location": self.location,
                "name": self.name, "settings": self.settings.to_dict(), "hardware": self.hardware.to_dict(),
                "control": self.control.to_dict(), "plan": self.plan, "allow_pickle": self.allow_pickle}

    def write(self, folder: Path, data: PreparedData | None = None) -> None:
        """Write ``spec.json`` (and ``data.json`` with the prepared examples) into ``folder``."""
        folder = Path(folder)
        (folder / SPEC_FILE).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        if data is not None:
            payload = {"task": data.task, "labels": data.labels, "examples": data.examples,
                       "report": data.report.to_dict()}
            (folder / DATA_FILE).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def read(cls, folder: Path) -> RunSpec:
        raw = json.loads((Path(folder) / SPEC_FILE).read_text(encoding="utf-8"))
        return cls(run_id=raw["run_id"], task=raw["task"], base_model=raw["base_model"], location=raw["location"],
                   name=raw.get("name", ""), settings=TrainSettings.from_dict(raw.get("settings")),
                   hardware=HardwareSettings(**raw.get("hardware", {})),
                   control=ControlSettings.from_dict(raw.get("control")), plan=dict(raw.get("plan") or {}),
                   allow_pickle=bool(raw.get("allow_pickle", False)))


def read_data(folder: Path) -> PreparedData:
    """The prepared data saved in a run folder (``data.json``)."""
    raw = json.loads((Path(folder) / DATA_FILE).read_text(encoding="utf-8"))
    report = DataReport(**{**raw["report"], "notes": list(raw["report"].get("notes", []))})
    return PreparedData(raw["task"], raw["examples"], raw["labels"], report)
