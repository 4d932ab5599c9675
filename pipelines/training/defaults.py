"""Defaults that learn: how many steps a run takes, and what a classifier trains besides the LoRA matrices.

- **Step budget.** With ``epochs`` 0 (every preset), a run takes enough optimizer steps to show about
  ``budget_examples`` training rows, at least ``min_epochs`` passes and at most ``max_steps`` steps: small data
  gets many passes (420 rows: about six), large data at least one or two; early stopping on the validation loss
  (``patience``) is what ends a run that stops improving. A positive ``epochs`` is a fixed number of passes.
- **The head.** A sequence classifier's head (``classifier``/``score``, plus the pooler or pre-classifier layer
  that feeds it, whatever of them the architecture has) is trained fully through PEFT's ``modules_to_save``,
  in its own optimizer parameter group with ``head_learning_rate``.

No torch at import time: these functions work on module and parameter names.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.training.settings import TrainSettings

# Head modules of sequence-classification models, trained fully (first level names under the task model or its
# encoder): BERT/MiniLM ``bert.pooler`` + ``classifier``; DistilBERT ``pre_classifier`` + ``classifier``;
# RoBERTa/DeBERTa ``classifier`` (+ ``pooler``); Llama/Qwen/GPT-2 ``score``.
HEAD_MODULES = ("classifier", "score", "pooler", "pre_classifier")
SAVED_MARK = "modules_to_save"  # PEFT's name part of a fully trained module's parameters
EVALUATIONS_PER_RUN = 12  # automatic evaluation interval: about this many per run (at most one per pass)


def steps_per_epoch(train_rows: int, settings: TrainSettings) -> int:
    """Optimizer steps of one pass over ``train_rows`` rows."""
    return max(1, math.ceil(math.ceil(max(train_rows, 1) / settings.batch_size) / settings.grad_accum))


def step_budget(train_rows: int, settings: TrainSettings) -> int:
    """Total optimizer steps: ``epochs`` passes if set, else the budget scaled to the data (see module doc)."""
    per_epoch = steps_per_epoch(train_rows, settings)
    if settings.epochs > 0:
        return max(1, math.ceil(per_epoch * settings.epochs))
    rows_per_step = settings.batch_size * settings.grad_accum
    wanted = math.ceil(settings.budget_examples / rows_per_step)
    at_least = math.ceil(per_epoch * settings.min_epochs)
    return max(1, min(max(wanted, at_least), settings.max_steps))


def eval_interval(total: int, per_epoch: int, settings: TrainSettings) -> int:
    """Steps between evaluations: ``eval_every`` if set, else four per pass on short runs and about
    :data:`EVALUATIONS_PER_RUN` per run on long ones, at least one per pass (early stopping compares them)."""
    if settings.eval_every:
        return settings.eval_every
    return max(1, min(per_epoch, max(per_epoch // 4, math.ceil(total / EVALUATIONS_PER_RUN))))


def head_modules(model: Any) -> list[str]:
    """The names in :data:`HEAD_MODULES` that are direct children of ``model`` or of its base encoder."""
    names: set[str] = set()
    for name, _module in model.named_modules():
        parts = name.split(".")
        if parts[-1] in HEAD_MODULES and len(parts) <= 2:
            names.add(parts[-1])
    return [n for n in HEAD_MODULES if n in names]


def param_groups(model: Any, settings: TrainSettings) -> list[dict[str, Any]]:
    """AdamW parameter groups: the LoRA matrices at ``learning_rate``; the fully trained head (PEFT
    ``modules_to_save``) at ``head_learning_rate`` (or ``learning_rate`` when that is 0). Empty groups are left out."""
    lora, head = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (head if SAVED_MARK in name else lora).append(param)
    head_lr = settings.head_learning_rate or settings.learning_rate
    groups = [{"params": lora, "lr": settings.learning_rate, "name": "lora"},
              {"params": head, "lr": head_lr, "name": "head"}]
    return [g for g in groups if g["params"]]
