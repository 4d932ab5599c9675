"""The training core: a base model wrapped with LoRA, its tokenized data and the step plan, reporting log lines
as events. It runs inside the launched child (``pipelines.training.child``); the loop is ``loop.TrainLoop``.

A custom loop (not ``transformers.Trainer``) keeps every step observable (loss, throughput, ETA) and needs no
``datasets`` dependency.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from pipelines.errors import InputError
from pipelines.messages import Msg
from pipelines.models.kinds import Precision
from pipelines.training.data import PreparedData, split
from pipelines.training.enums import TrainTask
from pipelines.training.settings import TrainSettings
from pipelines.training.tokenize import (
    encode_classification,
    encode_lm,
    generation_prompt,
)

# Preferred LoRA targets, first match wins: Llama/Mistral/Qwen, BERT, GPT-2, DistilBERT, GPT-NeoX, MPT.
TARGET_CANDIDATES = (("q_proj", "v_proj"), ("query", "value"), ("c_attn",), ("q_lin", "v_lin"),
                     ("query_key_value",), ("Wqkv",))
HEAD_NAMES = frozenset({"classifier", "score", "lm_head", "pooler", "dense"})
EventFn = Callable[["TrainEvent"], None]


@dataclass
class TrainEvent:
    """One thing that happened: ``log``, ``step`` (an optimizer step) or ``eval`` (an evaluation)."""

    kind: str
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    loss: float | None = None
    samples_per_s: float = 0.0
    tokens_per_s: float = 0.0
    eta_s: float | None = None
    message: Msg | None = None
    metrics: dict = field(default_factory=dict)


def pick_target_modules(model: torch.nn.Module) -> list[str]:
    """Choose LoRA target modules by scanning the names of the model's linear layers."""
    from transformers.pytorch_utils import Conv1D

    linear = (torch.nn.Linear, Conv1D)
    names = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if isinstance(mod, linear)}
    for candidate in TARGET_CANDIDATES:
        if all(n in names for n in candidate):
            return list(candidate)
    fallback = sorted(names - HEAD_NAMES)
    if not fallback:
        raise InputError("training.no_linear_layers")
    return fallback


def threads_for_training(cores: int | None = None) -> int:
    """Torch threads for the training thread: leave one core for inference when there are four or more."""
    cores = cores or os.cpu_count() or 1
    return cores - 1 if cores >= 4 else cores


class LoraTrainer:
    """Loads a base model, wraps it with LoRA and tokenizes the data; ``loop.TrainLoop`` trains it."""

    def __init__(
        self, data: PreparedData, settings: TrainSettings, location: str, *, device: str = "cpu",
        on_event: EventFn | None = None, allow_pickle: bool = False,
    ) -> None:
        self.data, self.settings, self.location = data, settings, location
        self.task = TrainTask(data.task)
        self.device = device
        self.on_event = on_event or (lambda _e: None)
        self.allow_pickle = allow_pickle
        self.model: Any = None
        self.tokenizer: Any = None
        self.precision = Precision.FLOAT32
        self.train_rows: list[dict] = []
        self.val_rows: list[dict] = []
        self.param_groups: list[dict] | None = None  # the optimizer's parameter groups (set by setup)
        self.val_examples: list[dict] = []

    # ---- setup -----------------------------------------------------------
    def log(self, key: str, **params: Any) -> None:
        """Report one log line (a message key and its parameters)."""
        self.on_event(TrainEvent("log", message=Msg(key, params)))

    def setup(self) -> None:
        """Load tokenizer and model, add LoRA, split and tokenize the data."""
        import transformers
        from peft import LoraConfig, TaskType, get_peft_model

        from pipelines.training.defaults import head_modules, param_groups

        s = self.settings
        torch.manual_seed(s.seed)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.location)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        kwargs: dict[str, Any] = {"use_safetensors": None if self.allow_pickle else True, "dtype": torch.float32}
        if self.task == TrainTask.CLASSIFICATION:
            labels = self.data.labels
            kwargs.update(num_labels=len(labels), id2label=dict(enumerate(labels)),
                          label2id={label: i for i, label in enumerate(labels)}, ignore_mismatched_sizes=True)
            auto, task_type = transformers.AutoModelForSequenceClassification, TaskType.SEQ_CLS
        else:
            auto, task_type = transformers.AutoModelForCausalLM, TaskType.CAUSAL_LM
        transformers.logging.set_verbosity_error()
        if self.task == TrainTask.DOMAIN_MLM:
            self._setup_masked_lm(kwargs)
            self._tokenize()
            return
        model = auto.from_pretrained(self.location, **kwargs)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        if s.gradient_checkpointing and getattr(model, "supports_gradient_checkpointing", False):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        targets = s.target_modules or pick_target_modules(model)
        head = head_modules(model) if self.task == TrainTask.CLASSIFICATION else []  # trained fully, own rate
        if self.task == TrainTask.DOMAIN and s.train_embeddings:  # domain adaptation: full input embeddings too
            from pipelines.training.domain import embedding_name

            head = [name for name in [embedding_name(model)] if name]
        lora = LoraConfig(task_type=task_type, r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                          target_modules=[t for t in targets if t not in head], modules_to_save=head or None)
        try:
            self.model = get_peft_model(model, lora).to(self.device)
        except ValueError as exc:
            raise InputError("training.lora_failed", detail=(str(exc).splitlines() or [""])[0][:300]) from None
        self.param_groups = param_groups(self.model, s)  # the optimizer's groups: LoRA, then the head
        trainable, total = self.model.get_nb_trainable_parameters()
        self.log("training.log.lora", targets=", ".join(targets), trainable=f"{trainable:,}", total=f"{total:,}",
                 percent=f"{100 * trainable / max(total, 1):.2f}")
        self._tokenize()

    def _setup_masked_lm(self, kwargs: dict[str, Any]) -> None:
        """An encoder for domain adaptation: a masked-LM head (fresh if missing) and LoRA on the encoder."""
        from peft import LoraConfig

        from pipelines.training.domain import embedding_name, masked_lm, trainable_counts

        s = self.settings
        chosen: list[str] = []

        def lora_for(encoder: Any) -> LoraConfig:
            targets = s.target_modules or pick_target_modules(encoder)
            saved = [name for name in [embedding_name(encoder)] if name] if s.train_embeddings else []
            chosen.extend(targets)
            return LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                              target_modules=targets, modules_to_save=saved or None)

        try:
            model = masked_lm(self.location, kwargs, lora_for)
        except ValueError as exc:
            raise InputError("training.lora_failed", detail=(str(exc).splitlines() or [""])[0][:300]) from None
        if s.gradient_checkpointing and getattr(model, "supports_gradient_checkpointing", False):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model = model.to(self.device)
        prefix = model.base_model_prefix + "."
        lora = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith(prefix)]
        head = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(prefix)]
        self.param_groups = [g for g in ({"params": lora, "lr": s.learning_rate, "name": "lora"},
                                         {"params": head, "lr": s.head_learning_rate or s.learning_rate,
                                          "name": "head"}) if g["params"]]
        trainable, total = trainable_counts(model)
        self.log("training.log.mlm_head", targets=", ".join(chosen), trainable=f"{trainable:,}", total=f"{total:,}",
                 percent=f"{100 * trainable / max(total, 1):.2f}")

    def _tokenize(self) -> None:
        """Split the data and tokenize both parts (domain text: packed chunks; an encoder's: masked)."""
        from pipelines.training.domain import encode_domain

        s = self.settings
        if self.device == "cuda":
            self.precision = Precision.BFLOAT16 if torch.cuda.is_bf16_supported() else Precision.FLOAT16
        train_idx, val_idx = split(self.data, s.val_split, s.seed, s.max_val_rows)
        if getattr(s, "oversample", False) and self.task == TrainTask.CLASSIFICATION:
            from pipelines.training.balance import oversample

            train_idx = oversample(train_idx, self.data.targets, s.seed)
        if self.task.domain:
            mlm = self.task == TrainTask.DOMAIN_MLM

            def encode(tok: Any, rows: list[dict], length: int, seed: int = s.seed) -> tuple[list[dict], int]:
                return encode_domain(tok, rows, length, mlm, s.mlm_probability, seed)
        else:
            encode = encode_classification if self.task == TrainTask.CLASSIFICATION else encode_lm
        self.train_rows, cut_train = encode(self.tokenizer, [self.data.examples[i] for i in train_idx], s.max_length)
        self.val_rows, cut_val = encode(self.tokenizer, [self.data.examples[i] for i in val_idx], s.max_length)
        self.val_examples = [self.data.examples[i] for i in val_idx]
        if self.task.domain:
            self.log("training.log.domain_rows", train=len(self.train_rows), val=len(self.val_rows),
                     paragraphs=len(self.data.examples), max_length=s.max_length)
        else:
            self.log("training.log.rows_stratified" if self.task == TrainTask.CLASSIFICATION else "training.log.rows",
                     train=len(self.train_rows), val=len(self.val_rows))
        if cut_train + cut_val and self.task.domain:
            self.log("training.log.domain_windows", rows=cut_train + cut_val, max_length=s.max_length)
        elif cut_train + cut_val:
            self.log("training.log.truncated", rows=cut_train + cut_val, max_length=s.max_length)

    def release(self) -> None:
        """Drop the model, tokenizer and encoded rows so their memory can be freed (the trainer is done)."""
        self.model = None
        self.tokenizer = None
        self.train_rows, self.val_rows, self.val_examples = [], [], []

    # ---- samples -------------------------------------------------------------
    @torch.no_grad()
    def generate(self, examples: list[dict]) -> list[str]:
        """Greedy continuations of the held-out prompts (causal LM only)."""
        max_new_tokens = self.settings.sample_tokens
        self.model.eval()
        outputs = []
        for example in examples:
            ids = torch.tensor([generation_prompt(self.tokenizer, example)], device=self.device)
            out = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                do_sample=False, pad_token_id=self.tokenizer.pad_token_id,
            )
            outputs.append(self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
        self.model.train()
        return outputs

    # ---- training -------------------------------------------------------------
    def plan(self) -> tuple[int, int, int]:
        """(steps per epoch, total optimizer steps, evaluation interval)."""
        from pipelines.training.defaults import eval_interval, step_budget, steps_per_epoch

        s = self.settings
        per_epoch = steps_per_epoch(len(self.train_rows), s)
        total = step_budget(len(self.train_rows), s)  # epochs 0: a budget scaled to the data (defaults.py)
        return per_epoch, total, eval_interval(total, per_epoch, s)


def generation_text(example: dict) -> str:
    """The visible prompt of a held-out example."""
    from pipelines.training.tokenize import text_prompt

    return example.get("prompt") or text_prompt(example["text"])
