"""The Fine-tune tab's Hardware accordion: device, processes, mixed precision, strategy, checkpoints.

Layout only; the values go into the ``finetune`` request's ``hardware`` and ``control`` sections
(:meth:`components.finetune_handlers.FinetuneHandlers.collect`). GPUs are listed with ``nvidia-smi`` (no torch
import at start-up); DeepSpeed is offered only when it can be imported.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from components.i18n import t
from pipelines.training.hardware import ControlSettings, HardwareSettings, deepspeed_available, list_gpus


@dataclass
class HardwareForm:
    device: gr.Dropdown
    processes: gr.Number
    precision: gr.Dropdown
    strategy: gr.Dropdown
    checkpoint_every: gr.Number
    keep_checkpoints: gr.Number

    @property
    def inputs(self) -> list[gr.components.Component]:
        """In the order of ``HARDWARE_FIELDS``."""
        return [self.device, self.processes, self.precision, self.strategy, self.checkpoint_every,
                self.keep_checkpoints]


def device_choices() -> list[tuple[object, str]]:
    gpus = list_gpus()
    choices: list[tuple[object, str]] = [(t("finetune.hw.device_auto"), "auto"), (t("finetune.hw.device_cpu"), "cpu")]
    choices += [(f"GPU {g.index}: {g.name}", g.choice) for g in gpus]
    if len(gpus) > 1:
        choices.append((t("finetune.hw.device_all"), "cuda:" + ",".join(str(g.index) for g in gpus)))
    return choices


def strategy_choices(deepspeed: bool) -> list[tuple[object, str]]:
    choices: list[tuple[object, str]] = [(t("finetune.hw.ddp"), "ddp")]
    if deepspeed:
        choices += [(t("finetune.hw.zero2"), "deepspeed-zero2"), (t("finetune.hw.zero3"), "deepspeed-zero3")]
    return [*choices, (t("finetune.hw.fsdp"), "fsdp")]


def hardware_form() -> HardwareForm:
    """The accordion (closed): defaults from :class:`HardwareSettings` and :class:`ControlSettings`."""
    hw, control, deepspeed = HardwareSettings(), ControlSettings(), deepspeed_available()
    with gr.Accordion(t("finetune.hw.title"), open=False, elem_id="ft-hardware"):
        with gr.Row():
            device = gr.Dropdown(device_choices(), value=hw.device, label=t("finetune.hw.device"),
                                 elem_id="ft-device")
            processes = gr.Number(hw.processes, label=t("finetune.hw.processes"), info=t("finetune.hw.processes_info"),
                                  precision=0, minimum=0, elem_id="ft-processes")
            precision = gr.Dropdown([(t("finetune.hw.precision_auto"), "auto"), ("bf16", "bf16"), ("fp16", "fp16"),
                                     (t("finetune.hw.precision_no"), "no")], value=hw.precision,
                                    label=t("finetune.hw.precision"), elem_id="ft-precision")
            strategy = gr.Dropdown(strategy_choices(deepspeed), value=hw.strategy, label=t("finetune.hw.strategy"),
                                   elem_id="ft-strategy")
        if not deepspeed:
            gr.Markdown(t("finetune.hw.no_deepspeed"), elem_id="ft-no-deepspeed")
        with gr.Row():
            every = gr.Number(control.checkpoint_every, label=t("finetune.hw.checkpoint_every"),
                              info=t("finetune.hw.checkpoint_every_info"), precision=0, minimum=0)
            keep = gr.Number(control.keep_checkpoints, label=t("finetune.hw.keep_checkpoints"),
                             info=t("finetune.hw.keep_info"), precision=0, minimum=1)
    return HardwareForm(device, processes, precision, strategy, every, keep)
