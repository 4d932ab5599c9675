"""The training core: a plain PyTorch loop over a LoRA-wrapped model, streaming events as it goes.

A custom loop (not ``transformers.Trainer``) keeps every step observable (loss, throughput, ETA), lets a
``threading.Event`` stop it between micro-batches, and needs no ``datasets`` dependency.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from pipelines.errors import InputError
from pipelines.messages import Msg
from pipelines.models.kinds import Precision
from pipelines.tasks.metrics import classification_metrics
from pipelines.training import results
from pipelines.training.data import PreparedData, split
from pipelines.training.enums import TrainTask
from pipelines.training.settings import TrainSettings
from pipelines.training.tokenize import (
    collate,
    encode_classification,
    encode_lm,
    generation_prompt,
    length_grouped_batches,
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
    """Loads a base model, wraps it with LoRA, trains and evaluates it. Runs in the caller's thread."""

    def __init__(
        self, data: PreparedData, settings: TrainSettings, location: str, *, device: str = "cpu",
        stop_event: threading.Event | None = None, on_event: EventFn | None = None, allow_pickle: bool = False,
    ) -> None:
        self.data, self.settings, self.location = data, settings, location
        self.task = data.task
        self.device = device
        self.stop_event = stop_event or threading.Event()
        self.on_event = on_event or (lambda _e: None)
        self.allow_pickle = allow_pickle
        self.model: Any = None
        self.tokenizer: Any = None
        self.precision = Precision.FLOAT32
        self.train_rows: list[dict] = []
        self.val_rows: list[dict] = []
        self.last_eval: dict = {}
        self.history: dict[str, list] = {"train": [], "val": []}
        self.generations: list[dict] = []
        self.stopped = False
        self.val_examples: list[dict] = []

    # ---- setup -----------------------------------------------------------
    def log(self, key: str, **params: Any) -> None:
        """Report one log line (a message key and its parameters)."""
        self.on_event(TrainEvent("log", message=Msg(key, params)))

    def setup(self) -> None:
        """Load tokenizer and model, add LoRA, split and tokenize the data."""
        import transformers
        from peft import LoraConfig, TaskType, get_peft_model

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
        model = auto.from_pretrained(self.location, **kwargs)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        if s.gradient_checkpointing and getattr(model, "supports_gradient_checkpointing", False):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        targets = s.target_modules or pick_target_modules(model)
        lora = LoraConfig(task_type=task_type, r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                          target_modules=targets)
        try:
            self.model = get_peft_model(model, lora).to(self.device)
        except ValueError as exc:
            raise InputError("training.lora_failed", detail=(str(exc).splitlines() or [""])[0][:300]) from None
        trainable, total = self.model.get_nb_trainable_parameters()
        self.log("training.log.lora", targets=", ".join(targets), trainable=f"{trainable:,}", total=f"{total:,}",
                 percent=f"{100 * trainable / max(total, 1):.2f}")
        if self.device == "cuda":
            self.precision = Precision.BFLOAT16 if torch.cuda.is_bf16_supported() else Precision.FLOAT16
        train_idx, val_idx = split(self.data, s.val_split, s.seed, s.max_val_rows)
        encode = encode_classification if self.task == TrainTask.CLASSIFICATION else encode_lm
        self.train_rows, cut_train = encode(self.tokenizer, [self.data.examples[i] for i in train_idx], s.max_length)
        self.val_rows, cut_val = encode(self.tokenizer, [self.data.examples[i] for i in val_idx], s.max_length)
        self.val_examples = [self.data.examples[i] for i in val_idx]
        self.log("training.log.rows_stratified" if self.task == TrainTask.CLASSIFICATION else "training.log.rows",
                 train=len(self.train_rows), val=len(self.val_rows))
        if cut_train + cut_val:
            self.log("training.log.truncated", rows=cut_train + cut_val, max_length=s.max_length)

    def release(self) -> None:
        """Drop the model, tokenizer and encoded rows so their memory can be freed (the trainer is done)."""
        self.model = None
        self.tokenizer = None
        self.train_rows, self.val_rows, self.val_examples = [], [], []

    # ---- evaluation ----------------------------------------------------------
    def _autocast(self) -> Any:
        if self.device == "cuda":
            dtype = torch.bfloat16 if self.precision == Precision.BFLOAT16 else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return nullcontext()

    def _forward(self, batch: dict[str, torch.Tensor]) -> Any:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with self._autocast():
            return self.model(**batch)

    @torch.inference_mode()
    def evaluate(self, step: int, epoch: float) -> dict:
        """Validation loss (and accuracy/F1 for classification) over the validation rows."""
        self.model.eval()
        total_loss, weight, preds, golds = 0.0, 0, [], []
        bs = max(self.settings.batch_size, 8)
        by_length = sorted(self.val_rows, key=lambda r: len(r["input_ids"]))  # little padding per batch
        for start in range(0, len(by_length), bs):
            rows = by_length[start:start + bs]
            batch = collate(self.tokenizer, rows, self.task)
            out = self._forward(batch)
            if self.task == TrainTask.CLASSIFICATION:
                n = len(rows)
                preds.extend(out.logits.argmax(-1).tolist())
                golds.extend(batch["labels"].tolist())
            else:
                n = int((batch["labels"][:, 1:] != -100).sum())
            total_loss += float(out.loss) * n
            weight += n
        self.model.train()
        val_loss = total_loss / max(weight, 1)
        metrics: dict[str, Any] = {"val_loss": val_loss, "step": step, "epoch": round(epoch, 3)}
        if self.task == TrainTask.CLASSIFICATION:
            names = self.data.labels
            metrics.update(classification_metrics([names[i] for i in golds], [names[i] for i in preds], names))
        else:
            metrics["perplexity"] = results.perplexity(val_loss)
        self.last_eval = metrics
        self.history["val"].append((step, val_loss))
        return metrics

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
        s = self.settings
        per_epoch = max(1, math.ceil(math.ceil(len(self.train_rows) / s.batch_size) / s.grad_accum))
        total = max(1, math.ceil(per_epoch * s.epochs))
        return per_epoch, total, s.eval_every or max(1, per_epoch // 4)

    def train(self) -> dict:
        """Run the loop until done or stopped; return the last completed evaluation."""
        from transformers import get_linear_schedule_with_warmup

        s = self.settings
        per_epoch, total, eval_every = self.plan()
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=s.weight_decay)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(s.warmup_ratio * total), total)
        scaler = torch.amp.GradScaler("cuda") if self.precision == Precision.FLOAT16 else None
        generator = torch.Generator().manual_seed(s.seed)
        lengths = [len(r["input_ids"]) for r in self.train_rows]
        sample_prompts = self.val_examples[:3] if self.task == TrainTask.CAUSAL_LM else []
        before = self.generate(sample_prompts) if sample_prompts else []
        self.on_event(TrainEvent("eval", 0, total, 0.0, metrics=self.evaluate(0, 0.0)))
        self.model.train()
        step, samples, tokens, train_time = 0, 0, 0, 0.0
        while step < total and not self.stop_event.is_set():
            batches = length_grouped_batches(lengths, s.batch_size, generator)
            for group_start in range(0, len(batches), s.grad_accum):
                group = batches[group_start:group_start + s.grad_accum]
                started = time.perf_counter()
                group_rows = sum(len(b) for b in group)
                loss_sum = 0.0
                for idx in group:
                    if self.stop_event.is_set():
                        break
                    batch = collate(self.tokenizer, [self.train_rows[i] for i in idx], self.task)
                    out = self._forward(batch)
                    loss = out.loss * (len(idx) / group_rows)
                    (scaler.scale(loss) if scaler else loss).backward()
                    loss_sum += float(loss.detach())
                    tokens += int(batch["attention_mask"].sum())
                if self.stop_event.is_set():
                    optimizer.zero_grad(set_to_none=True)
                    break
                if scaler:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                samples += group_rows
                train_time += time.perf_counter() - started
                epoch = step / per_epoch
                self.history["train"].append((step, loss_sum))
                self.on_event(TrainEvent(
                    "step", step, total, epoch, loss_sum, samples / train_time, tokens / train_time,
                    eta_s=(total - step) * train_time / step,
                ))
                end_of_epoch = group_start + s.grad_accum >= len(batches)
                if step % eval_every == 0 or step == total or end_of_epoch:
                    self.on_event(TrainEvent("eval", step, total, epoch, metrics=self.evaluate(step, epoch)))
                if step >= total:
                    break
        self.stopped = self.stop_event.is_set() and step < total
        if self.stopped:
            self.log("training.log.stopped_at", step=step, total=total, eval_step=self.last_eval["step"])
        if sample_prompts:
            after = self.generate(sample_prompts)
            self.generations = [
                {"prompt": generation_text(e), "before": b, "after": a}
                for e, b, a in zip(sample_prompts, before, after, strict=True)
            ]
        metrics = dict(self.last_eval)
        metrics.update(samples_per_s=samples / train_time if train_time else 0.0,
                       tokens_per_s=tokens / train_time if train_time else 0.0,
                       train_seconds=round(train_time, 2), steps_done=step, total_steps=total)
        if self.generations:
            metrics["generations"] = self.generations
        return metrics


def generation_text(example: dict) -> str:
    """The visible prompt of a held-out example."""
    from pipelines.training.tokenize import text_prompt

    return example.get("prompt") or text_prompt(example["text"])
