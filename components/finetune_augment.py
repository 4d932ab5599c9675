"""The Fine-tune tab's data-augmentation options (classification, off by default): EDA variants per training row and
paraphrases by an instruct model (local or ``remote:<endpoint>/<model>``). Layout and wiring only; the logic is
:mod:`pipelines.training.augment`.

Use in the tab: ``augment = augment_inputs(ctx)`` in the form, then ``event = extend_augment(augment, event, spec_box,
errors)`` on the form's collect event (the ``finetune`` request's spec then carries ``"augment"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from components.backends_picker import generation_choices
from components.common import ErrorLine
from components.i18n import t
from pipelines.context import AppContext
from pipelines.training.augment import MAX_EDA, MAX_PARAPHRASES, spec_with_augment

DEFAULT_PARAPHRASER = "smollm2-135m-instruct"


@dataclass
class AugmentInputs:
    eda: gr.Number
    model: gr.Dropdown
    n: gr.Number

    @property
    def all(self) -> list[gr.components.Component]:
        return [self.eda, self.model, self.n]


def augment_inputs(ctx: AppContext) -> AugmentInputs:
    """The three fields, in a closed accordion (inside the current Blocks)."""
    with gr.Accordion(t("augment.title"), open=False, elem_id="ft-augment"):
        gr.Markdown(t("augment.intro"))
        with gr.Row():
            eda = gr.Number(0, label=t("augment.eda"), info=t("augment.eda_info"), minimum=0, maximum=MAX_EDA,
                            precision=0, elem_id="ft-augment-eda")
            n = gr.Number(0, label=t("augment.n"), info=t("augment.n_info"), minimum=0, maximum=MAX_PARAPHRASES,
                          precision=0, elem_id="ft-augment-n")
            model = gr.Dropdown(generation_choices(ctx, ("causal-lm",)), value=DEFAULT_PARAPHRASER,
                                label=t("augment.model"), allow_custom_value=True, filterable=True,
                                elem_id="ft-augment-model")
    return AugmentInputs(eda, model, n)


def extend_augment(inputs: AugmentInputs, event: Any, spec: gr.Textbox, errors: ErrorLine) -> Any:
    """After ``event`` (which wrote the spec JSON into ``spec``): add the augmentation; the event to chain on."""
    merged = event.success(errors.guard(spec_with_augment), [spec, *inputs.all], spec, api_visibility="private",
                           show_progress="hidden")
    errors.watch(merged)
    return merged
