"""The single-slot rule per device set: one training job per GPU set (or on the CPU) at a time.

A job claims the devices its launch plan uses: ``cpu`` for a CPU run, ``cuda:<i>`` for each GPU. A second job on a
box with several GPUs takes the GPUs no one holds (device ``auto`` resolves against the free ones); a job that
asks for a GPU someone holds, or finds every GPU held, is told which run holds them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from pipelines.training.hardware import DEVICE_AUTO, Gpu, HardwareSettings, LaunchPlan, list_gpus, plan

CPU_SLOT = "cpu"


def plan_devices(launch_plan: LaunchPlan) -> frozenset[str]:
    """The devices a launch plan trains on: ``{"cpu"}`` or ``{"cuda:0", "cuda:1", ...}``."""
    if launch_plan.device == "cuda":
        return frozenset(f"cuda:{i}" for i in launch_plan.gpu_ids)
    return frozenset({CPU_SLOT})


def recorded_devices(plan_record: dict) -> frozenset[str]:
    """The devices of a launch plan as ``spec.json`` records it (a run from before plans were recorded: the CPU)."""
    if plan_record.get("device") == "cuda":
        return frozenset(f"cuda:{i}" for i in plan_record.get("gpu_ids") or ())
    return frozenset({CPU_SLOT})


class DeviceSlots:
    """Which run holds which training device (thread-safe); lives on the app context."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # device -> run id

    def claim(self, devices: Iterable[str], holder: str) -> str | None:
        """Claim every device in ``devices`` for ``holder``; None on success, else the run holding one of them."""
        wanted = frozenset(devices)
        with self._lock:
            taken = [self._held[d] for d in sorted(wanted) if d in self._held and self._held[d] != holder]
            if taken:
                return taken[0]
            self._held.update(dict.fromkeys(wanted, holder))
            return None

    def release(self, holder: str) -> None:
        """Free every device ``holder`` holds."""
        with self._lock:
            for device in [d for d, h in self._held.items() if h == holder]:
                del self._held[device]

    def held(self) -> dict[str, str]:
        """A copy of device -> run id."""
        with self._lock:
            return dict(self._held)

    def is_free(self) -> bool:
        """Whether no device is held."""
        with self._lock:
            return not self._held

    def free_gpus(self, gpus: tuple[Gpu, ...]) -> tuple[Gpu, ...]:
        """The GPUs among ``gpus`` that no run holds."""
        held = self.held()
        return tuple(g for g in gpus if g.choice not in held)

    def can_start(self, hw: HardwareSettings, gpus: tuple[Gpu, ...] | None = None) -> bool:
        """Whether a job with ``hw`` would find its devices free now (auto on a GPU box: at least one free GPU)."""
        gpus = list_gpus() if gpus is None else gpus
        held = self.held()
        if hw.device == DEVICE_AUTO:
            return bool(self.free_gpus(gpus)) if gpus else CPU_SLOT not in held
        try:
            wanted = plan_devices(plan(hw, gpus))
        except Exception:  # noqa: BLE001 - a bad setting is reported by the start itself
            return True
        return not wanted & held.keys()

    def plan_for(self, hw: HardwareSettings, gpus: tuple[Gpu, ...] | None = None,
                 threads: int | None = None) -> tuple[LaunchPlan, str | None]:
        """The launch plan for ``hw`` against the free devices, and the run that blocks it (None when free).
        Device ``auto`` on a GPU box takes the free GPUs; with every GPU held it is blocked, never moved to the CPU."""
        gpus = list_gpus() if gpus is None else gpus
        if hw.device == DEVICE_AUTO and gpus:
            free = self.free_gpus(gpus)
            if not free:
                return plan(hw, gpus, threads=threads), next(iter(self.held().values()))
            return plan(hw, free, threads=threads), None
        launch_plan = plan(hw, gpus, threads=threads)
        held = self.held()
        blocker = next((held[d] for d in sorted(plan_devices(launch_plan)) if d in held), None)
        return launch_plan, blocker
