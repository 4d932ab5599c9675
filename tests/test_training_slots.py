"""One training job per device set: on a box with several GPUs a second job takes the free ones (GPUs faked)."""

from __future__ import annotations

import pytest

from pipelines.errors import InputError
from pipelines.training.hardware import Gpu, HardwareSettings, plan
from pipelines.training.slots import DeviceSlots, plan_devices, recorded_devices

FOUR = tuple(Gpu(i, "H200") for i in range(4))
AUTO = HardwareSettings()


def test_claims_exclude_each_other_until_released() -> None:
    slots = DeviceSlots()
    assert slots.is_free()
    assert slots.claim({"cuda:0", "cuda:1"}, "run-a") is None
    assert slots.claim({"cuda:1", "cuda:2"}, "run-b") == "run-a"  # one GPU overlaps: nothing is taken
    assert slots.held() == {"cuda:0": "run-a", "cuda:1": "run-a"}
    assert slots.claim({"cuda:2"}, "run-b") is None
    slots.release("run-a")
    assert slots.held() == {"cuda:2": "run-b"}
    assert slots.claim({"cuda:0"}, "run-c") is None
    slots.release("run-b")
    slots.release("run-c")
    assert slots.is_free()


def test_a_second_job_on_a_multi_gpu_box_takes_the_free_gpus() -> None:
    slots = DeviceSlots()
    first, blocker = slots.plan_for(HardwareSettings(device="cuda:0,1"), FOUR)
    assert blocker is None and first.gpu_ids == (0, 1) and first.processes == 2
    assert slots.claim(plan_devices(first), "first") is None

    assert slots.can_start(AUTO, FOUR)
    second, blocker = slots.plan_for(AUTO, FOUR)  # auto: every free GPU, one process each
    assert blocker is None and second.device == "cuda" and second.gpu_ids == (2, 3) and second.processes == 2
    assert slots.claim(plan_devices(second), "second") is None

    assert not slots.can_start(AUTO, FOUR)
    third, blocker = slots.plan_for(AUTO, FOUR)
    assert blocker in {"first", "second"} and third.device == "cuda"  # never moved to the CPU behind the user's back
    _, blocker = slots.plan_for(HardwareSettings(device="cuda:1"), FOUR)
    assert blocker == "first"
    cpu, blocker = slots.plan_for(HardwareSettings(device="cpu"), FOUR)  # the CPU is its own slot
    assert blocker is None and plan_devices(cpu) == {"cpu"}

    slots.release("first")
    again, blocker = slots.plan_for(AUTO, FOUR)
    assert blocker is None and again.gpu_ids == (0, 1)


def test_without_gpus_one_cpu_job_at_a_time() -> None:
    slots = DeviceSlots()
    first, blocker = slots.plan_for(AUTO, ())
    assert blocker is None and plan_devices(first) == {"cpu"}
    assert slots.claim(plan_devices(first), "first") is None
    assert not slots.can_start(AUTO, ())
    assert slots.plan_for(HardwareSettings(device="cpu", processes=2), ())[1] == "first"


def test_asking_for_more_processes_than_free_gpus_is_a_clear_error() -> None:
    slots = DeviceSlots()
    slots.claim({"cuda:0", "cuda:1", "cuda:2"}, "big")
    with pytest.raises(InputError, match="2"):
        slots.plan_for(HardwareSettings(processes=2), FOUR)


def test_the_devices_a_running_child_was_started_on_come_back_from_its_spec() -> None:
    assert recorded_devices(plan(HardwareSettings(device="cuda:1,3"), FOUR).to_dict()) == {"cuda:1", "cuda:3"}
    assert recorded_devices(plan(AUTO, ()).to_dict()) == {"cpu"}
    assert recorded_devices({}) == {"cpu"}  # a run from before plans were recorded
