"""Training settings: one dataclass with defaults, three presets, validation with clear messages.

How long a run trains is a step budget scaled to the data, not a fixed epoch count: with ``epochs`` at 0 (every
preset) a run shows about ``budget_examples`` training rows (at least ``min_epochs`` passes, at most ``max_steps``
optimizer steps) and early stopping on the validation loss (``patience`` evaluations without a better loss) ends
it sooner. A classifier's head is trained fully with its own, higher ``head_learning_rate``
(see :mod:`pipelines.training.defaults`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from pipelines.errors import InputError
from pipelines.messages import Msg
from pipelines.training.enums import TrainTask

TASKS = tuple(TrainTask)
DEFAULT_MODELS = MappingProxyType({TrainTask.CLASSIFICATION: "minilm-l6",
                                   TrainTask.CAUSAL_LM: "smollm2-135m-instruct",
                                   TrainTask.DOMAIN: "smollm2-135m-instruct", TrainTask.DOMAIN_MLM: "minilm-l6"})
MAX_PROBES = 5  # live probes: prompts (causal LM) or texts (classifier) answered at every evaluation
MAX_PROBE_CHARS = 500
PRESET_NAMES = ("quick", "balanced", "thorough")


@dataclass
class TrainSettings:
    """Every hyper-parameter of a LoRA run (all editable in the UI)."""

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=list)  # empty: chosen per architecture
    learning_rate: float = 5e-4
    epochs: float = 0.0  # passes over the train rows; 0: automatic (the step budget below)
    budget_examples: int = 3000  # automatic: about this many training rows shown in all...
    min_epochs: float = 2.0  # ...but at least this many passes...
    max_steps: int = 1000  # ...and at most this many optimizer steps
    patience: int = 3  # early stopping: evaluations without a better validation loss; 0: off
    head_learning_rate: float = 0.0  # classifiers: the head's learning rate; 0: the same as learning_rate
    batch_size: int = 16
    grad_accum: int = 1
    max_length: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    val_split: float = 0.2
    seed: int = 42
    eval_every: int = 0  # optimizer steps between evaluations; 0: about four per epoch
    gradient_checkpointing: bool = False
    oversample: bool = False  # classification: repeat rows of rare labels in the train split until balanced
    max_val_rows: int = 500
    sample_tokens: int = 40  # causal LM: tokens generated for each before/after sample
    probes: list[str] = field(default_factory=list)  # live probes (up to MAX_PROBES), answered at every evaluation
    probe_tokens: int = 24  # causal LM: tokens generated for each probe
    train_embeddings: bool = False  # domain adaptation: also train the input embeddings fully (besides LoRA)
    mlm_probability: float = 0.15  # domain adaptation of an encoder: share of tokens masked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, base: TrainSettings | None = None) -> TrainSettings:
        """Overlay ``data`` on ``base`` (defaults if None); unknown keys are an error."""
        data = dict(data or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InputError("training.unknown_settings", names=", ".join(unknown))
        values: dict[str, Any] = {}
        for name, value in data.items():
            if value is None:
                continue
            values[name] = _coerce(name, known[name].type, value)
        return replace(base or cls(), **values).validated()

    def validated(self) -> TrainSettings:
        """Return self or raise :class:`InputError` naming the first out-of-range field."""
        checks = [
            (1 <= self.lora_r <= 256, "lora_r"),
            (0 < self.lora_alpha <= 1024, "lora_alpha"),
            (0 <= self.lora_dropout < 1, "lora_dropout"),
            (0 < self.learning_rate <= 0.1, "learning_rate"),
            (0 <= self.epochs <= 100, "epochs_auto"),
            (1 <= self.budget_examples <= 10_000_000, "budget_examples"),
            (0 < self.min_epochs <= 100, "min_epochs"),
            (1 <= self.max_steps <= 1_000_000, "max_steps"),
            (0 <= self.patience <= 1000, "patience"),
            (0 <= self.head_learning_rate <= 0.1, "head_learning_rate"),
            (1 <= self.batch_size <= 512, "batch_size"),
            (1 <= self.grad_accum <= 256, "grad_accum"),
            (8 <= self.max_length <= 4096, "max_length"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio"),
            (0 <= self.weight_decay <= 1, "weight_decay"),
            (0.05 <= self.val_split <= 0.5, "val_split"),
            (0 <= self.seed < 2**32, "seed"),
            (self.eval_every >= 0, "eval_every"),
            (10 <= self.max_val_rows <= 100_000, "max_val_rows"),
            (1 <= self.sample_tokens <= 512, "sample_tokens"),
            (len(self.probes) <= MAX_PROBES, "probes"),
            (1 <= self.probe_tokens <= 128, "probe_tokens"),
            (0.05 <= self.mlm_probability <= 0.5, "mlm_probability"),
        ]
        for ok, name in checks:
            if not ok:
                raise InputError(Msg.of("training.setting." + name))
        return self


def probe_list(value: Any) -> list[str]:
    """Probes from a list or from text with one probe per line: stripped, empty ones dropped, each cut to
    :data:`MAX_PROBE_CHARS` characters; more than :data:`MAX_PROBES` is an error (see ``validated``)."""
    items = value.splitlines() if isinstance(value, str) else list(value or [])
    return [str(v).strip()[:MAX_PROBE_CHARS] for v in items if str(v).strip()]


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    text = str(type_name)
    try:
        if name == "probes":
            return probe_list(value)
        if text.startswith("list"):
            if isinstance(value, str):
                value = [] if value.strip().lower() in ("", "auto") else value.split(",")
            return [str(v).strip() for v in value if str(v).strip()]
        if text == "bool":
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        if text == "int":
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        return float(value)
    except (TypeError, ValueError):
        raise InputError("training.not_a_number", name=name, value=repr(value)[:60]) from None


# The step budget (epochs 0 = automatic) grows with the preset; early stopping ends a run that stops learning.
_PRESETS = MappingProxyType({
    "quick": {"lora_r": 8, "lora_alpha": 16, "learning_rate": 1e-3, "epochs": 0, "budget_examples": 2000,
              "min_epochs": 1, "max_steps": 300, "patience": 3, "batch_size": 16, "grad_accum": 1,
              "max_length": 64, "warmup_ratio": 0.06, "weight_decay": 0.0},
    "balanced": {"lora_r": 8, "lora_alpha": 16, "learning_rate": 5e-4, "epochs": 0, "budget_examples": 5000,
                 "min_epochs": 2, "max_steps": 1000, "patience": 4, "batch_size": 16, "grad_accum": 1,
                 "max_length": 128, "warmup_ratio": 0.1, "weight_decay": 0.01},
    "thorough": {"lora_r": 16, "lora_alpha": 32, "learning_rate": 3e-4, "epochs": 0, "budget_examples": 10000,
                 "min_epochs": 3, "max_steps": 3000, "patience": 5, "batch_size": 16, "grad_accum": 2,
                 "max_length": 256, "warmup_ratio": 0.1, "weight_decay": 0.01},
})
# Decoders see prompt and response together, so they get twice the tokens. A classifier's LoRA learns faster
# with a higher learning rate than a language-model adapter, and its freshly initialised head (trained fully,
# not through LoRA) with a higher one still.
_LM_LENGTH = MappingProxyType({"quick": 128, "balanced": 256, "thorough": 512})
_CLS_LR = MappingProxyType({"quick": 2e-3, "balanced": 1e-3, "thorough": 5e-4})
_HEAD_LR = MappingProxyType({"quick": 3e-3, "balanced": 2e-3, "thorough": 1e-3})


def preset(name: str, task: str = "classification") -> TrainSettings:
    """The named preset (quick, balanced, thorough) for ``task``."""
    key = (name or "").strip().lower()
    if key not in _PRESETS:
        raise InputError("training.unknown_preset", name=str(name)[:40], choices=", ".join(PRESET_NAMES))
    values = dict(_PRESETS[key])
    if task in (TrainTask.CAUSAL_LM, TrainTask.DOMAIN, TrainTask.DOMAIN_MLM):
        values["max_length"] = _LM_LENGTH[key]
    else:
        values["learning_rate"] = _CLS_LR[key]
        values["head_learning_rate"] = _HEAD_LR[key]
    return TrainSettings(**values)


def check_task(task: str) -> TrainTask:
    """``task`` as a :class:`TrainTask`, or :class:`InputError`."""
    try:
        return TrainTask(task)
    except ValueError:
        raise InputError("training.unknown_task", task=str(task)[:40]) from None
