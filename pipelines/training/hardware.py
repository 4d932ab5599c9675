"""Where and how a run trains: the hardware settings (device, processes, precision, strategy), the run-control
settings (checkpoints, early stopping), and the launch plan they resolve to. No torch import here: the GPUs are
listed with ``nvidia-smi`` so the Fine-tune tab can offer them without loading torch at start-up."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from pipelines.errors import InputError

DEVICE_AUTO, DEVICE_CPU = "auto", "cpu"
PRECISIONS = ("auto", "bf16", "fp16", "no")
STRATEGIES = ("ddp", "deepspeed-zero2", "deepspeed-zero3", "fsdp")
DEEPSPEED_STRATEGIES = frozenset({"deepspeed-zero2", "deepspeed-zero3"})
MAX_CPU_PROCESSES = 64
DEEPSPEED_INSTALL = "pip install deepspeed"


@dataclass(frozen=True)
class Gpu:
    """One visible CUDA device."""

    index: int
    name: str

    @property
    def choice(self) -> str:
        return f"cuda:{self.index}"


def list_gpus(timeout: float = 5.0) -> tuple[Gpu, ...]:
    """The GPUs ``nvidia-smi`` reports (respecting ``CUDA_VISIBLE_DEVICES``); empty without a driver."""
    exe = shutil.which("nvidia-smi")
    if exe is None or os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return ()
    try:
        out = subprocess.run([exe, "--query-gpu=index,name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in out.splitlines():
        index, _, name = line.partition(",")
        if index.strip().isdigit():
            gpus.append(Gpu(int(index), name.strip()))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        wanted = [v.strip() for v in visible.split(",")]
        gpus = [Gpu(i, g.name) for i, g in enumerate(g for g in gpus if str(g.index) in wanted)]
    return tuple(gpus)


def deepspeed_available() -> bool:
    """Whether ``deepspeed`` can be imported (checked without importing it)."""
    return importlib.util.find_spec("deepspeed") is not None


@dataclass
class HardwareSettings:
    """Device (``auto``, ``cpu`` or ``cuda:0,1``), processes (0: auto), mixed precision and strategy."""

    device: str = DEVICE_AUTO
    processes: int = 0  # 0: every selected GPU, or one process on the CPU
    precision: str = "auto"  # auto: bf16 where supported, fp16 on older GPUs, none on the CPU
    strategy: str = "ddp"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> HardwareSettings:
        data = dict(data or {})
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise InputError("training.unknown_settings", names=", ".join(unknown)[:200])
        values = {k: v for k, v in data.items() if v is not None and v != ""}
        if "processes" in values:
            values["processes"] = _int("processes", values["processes"])
        return replace(cls(), **{k: (str(v).strip().lower() if k != "processes" else v)
                                 for k, v in values.items()}).validated()

    def validated(self) -> HardwareSettings:
        if self.precision not in PRECISIONS:
            raise InputError("training.hw.bad_precision", value=self.precision[:20], choices=", ".join(PRECISIONS))
        if self.strategy not in STRATEGIES:
            raise InputError("training.hw.bad_strategy", value=self.strategy[:20], choices=", ".join(STRATEGIES))
        if not 0 <= self.processes <= MAX_CPU_PROCESSES:
            raise InputError("training.hw.bad_processes", limit=MAX_CPU_PROCESSES)
        if self.device not in (DEVICE_AUTO, DEVICE_CPU) and not _gpu_ids(self.device):
            raise InputError("training.hw.bad_device", value=self.device[:40])
        if self.strategy in DEEPSPEED_STRATEGIES and not deepspeed_available():
            raise InputError("training.hw.no_deepspeed", command=DEEPSPEED_INSTALL)
        return self


@dataclass
class ControlSettings:
    """Checkpoints of one run, and the margin early stopping (``TrainSettings.patience``) counts as better."""

    checkpoint_every: int = 0  # optimizer steps between checkpoints; 0: at every evaluation
    keep_checkpoints: int = 2  # the last K are kept, plus the best
    min_delta: float = 0.0  # how much lower a validation loss must be to count as better

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ControlSettings:
        data = dict(data or {})
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise InputError("training.unknown_settings", names=", ".join(unknown)[:200])
        values: dict[str, Any] = {}
        for name, value in data.items():
            if value is None or value == "":
                continue
            values[name] = float(value) if name == "min_delta" else _int(name, value)
        made = replace(cls(), **values)
        if made.checkpoint_every < 0 or not 1 <= made.keep_checkpoints <= 100 or made.min_delta < 0:
            raise InputError("training.hw.bad_control")
        return made

    @staticmethod
    def effective_patience(settings: Any) -> int:
        """Early stopping's patience in evaluations (0: off): the training settings' ``patience``."""
        return int(getattr(settings, "patience", 0) or 0)


def _int(name: str, value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError("training.not_a_number", name=name, value=repr(value)[:60]) from None
    if number != int(number):
        raise InputError("training.not_a_number", name=name, value=repr(value)[:60])
    return int(number)


def _gpu_ids(device: str) -> list[int]:
    """``cuda:0,2`` -> [0, 2]; ``cuda`` -> [] (use :func:`plan` for auto)."""
    if not device.startswith("cuda:"):
        return []
    ids = [part.strip() for part in device[5:].split(",")]
    return [int(i) for i in ids] if ids and all(i.isdigit() for i in ids) else []


@dataclass(frozen=True)
class LaunchPlan:
    """What the launcher starts: device kind, visible GPU ids, processes per node, precision, strategy."""

    device: str  # "cuda" or "cpu"
    gpu_ids: tuple[int, ...]
    processes: int
    precision: str  # bf16 / fp16 / no, or auto (decided in the child, where torch knows the GPU)
    strategy: str
    threads: int  # torch threads per process

    @property
    def uses_accelerate_launch(self) -> bool:
        return self.strategy != "ddp"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gpu_ids": list(self.gpu_ids)}


def plan(hw: HardwareSettings, gpus: tuple[Gpu, ...] | None = None, cores: int | None = None,
         threads: int | None = None) -> LaunchPlan:
    """Resolve ``auto`` choices against the machine: GPUs found, processes, threads per process."""
    gpus = list_gpus() if gpus is None else gpus
    cores = cores or os.cpu_count() or 1
    if hw.device == DEVICE_CPU or (hw.device == DEVICE_AUTO and not gpus):
        if hw.strategy != "ddp":
            raise InputError("training.hw.strategy_needs_gpu", strategy=hw.strategy)
        processes = hw.processes or 1
        per = threads or max(1, (cores - 1 if cores >= 4 else cores) // processes)
        return LaunchPlan("cpu", (), processes, "no" if hw.precision == "auto" else hw.precision, "ddp", per)
    ids = tuple(_gpu_ids(hw.device)) if hw.device != DEVICE_AUTO else tuple(g.index for g in gpus)
    known = {g.index for g in gpus}
    missing = [i for i in ids if i not in known]
    if missing:
        raise InputError("training.hw.no_gpu", value=", ".join(map(str, missing)))
    processes = hw.processes or len(ids)
    if processes > len(ids):
        raise InputError("training.hw.too_many_processes", processes=processes, gpus=len(ids))
    return LaunchPlan("cuda", ids[:processes], processes, hw.precision, hw.strategy,
                      threads or max(1, cores // processes))
