"""The training loop of the launched child, on ``accelerate``: every process trains its share of each micro-batch
(the global batch is the batch-size setting whatever the process count, so 1 and N processes follow the same
trajectory), gradients are averaged by DDP, the loss is reduced once per step and logged by the main process.

The data order comes from the seed and the epoch number alone, so a resumed run continues at the same position.
Evaluations are sharded over the processes and gathered. Checkpoints every N steps (or at every evaluation), at
Stop, and at each new best validation loss; early stopping after ``patience`` evaluations without one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipelines.messages import Msg
from pipelines.tasks.metrics import classification_metrics
from pipelines.training import checkpoints, results
from pipelines.training.enums import RunStatus, TrainTask
from pipelines.training.hardware import ControlSettings
from pipelines.training.tokenize import collate, length_grouped_batches

TEST_OOM_ENV = "LMW_TEST_OOM_AT_STEP"  # test hook: raise torch.OutOfMemoryError at this step
TEST_SLOW_ENV = "LMW_TEST_STEP_SECONDS"  # test hook: sleep this long after every optimizer step
Emit = Callable[..., None]


@dataclass
class Progress:
    """Counters that a checkpoint saves and a resumed run restores."""

    step: int = 0
    samples: int = 0
    tokens: int = 0
    train_time: float = 0.0
    best_step: int | None = None
    best_loss: float = math.inf
    bad_evals: int = 0
    best_metrics: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LoopResult:
    status: RunStatus
    metrics: dict
    progress: Progress
    early_stopped: bool = False


class TrainLoop:
    """Runs ``trainer`` (set up, model on ``accelerator.device``) to the end, to Stop or to early stopping."""

    def __init__(self, trainer: Any, accelerator: Any, control: ControlSettings, run_dir: Path, emit: Emit,
                 should_stop: Callable[[], bool], sharded: bool = False,
                 before: Callable[[], None] | None = None) -> None:
        self.before = before  # called once before the first optimizer step of a fresh run
        self.tr, self.acc, self.control, self.run_dir = trainer, accelerator, control, Path(run_dir)
        self.emit, self.should_stop, self.sharded = emit, should_stop, sharded
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.last_eval: dict = {}
        self.oom_at = int(os.environ.get(TEST_OOM_ENV, "0") or 0)
        self.slow = float(os.environ.get(TEST_SLOW_ENV, "0") or 0)
        from pipelines.training.tensorboard_log import TensorBoardLog  # event files (H4)

        self.board = TensorBoardLog(self.run_dir, enabled=self.rank == 0)

    # ---- evaluation ----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def evaluate(self, model: Any, step: int, epoch: float) -> dict:
        """Validation loss (and accuracy/F1 for classifiers), each process on its share, gathered."""
        tr, unwrapped = self.tr, self.acc.unwrap_model(model)
        unwrapped.eval()
        order = sorted(range(len(tr.val_rows)), key=lambda i: len(tr.val_rows[i]["input_ids"]))[self.rank::self.world]
        bs, loss_sum, weight, scored = max(tr.settings.batch_size, 8), 0.0, 0, []
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            batch = {k: v.to(self.acc.device) for k, v in collate(tr.tokenizer, [tr.val_rows[i] for i in idx],
                                                                   tr.task).items()}
            with self.acc.autocast():
                out = unwrapped(**batch)
            if tr.task == TrainTask.CLASSIFICATION:
                n = len(idx)
                scored.extend(zip(idx, out.logits.argmax(-1).tolist(), batch["labels"].tolist(), strict=True))
            else:  # tokens scored: the shifted labels of a causal LM, the masked ones of a masked LM
                n = int((batch["labels"][:, int(tr.task != TrainTask.DOMAIN_MLM):] != -100).sum())
            loss_sum += float(out.loss) * n
            weight += n
        parts = [(loss_sum, weight, scored)]
        if self.world > 1:
            from accelerate.utils import gather_object

            parts = gather_object(parts)
        unwrapped.train()
        val_loss = sum(p[0] for p in parts) / max(sum(p[1] for p in parts), 1)
        metrics: dict[str, Any] = {"val_loss": val_loss, "step": step, "epoch": round(epoch, 3)}
        if tr.task == TrainTask.CLASSIFICATION:
            scored = sorted(s for p in parts for s in p[2])
            names = tr.data.labels
            metrics.update(classification_metrics([names[g] for _, _, g in scored], [names[p] for _, p, _ in scored],
                                                   names))
            self.emit("log", message=Msg.of("training.log.eval_cls", step=step, loss=f"{val_loss:.4f}",
                                            accuracy=f"{metrics['accuracy']:.4f}",
                                            f1=f"{metrics.get('macro_f1', 0):.4f}"))
        elif tr.task == TrainTask.DOMAIN_MLM:
            metrics["perplexity"] = results.perplexity(val_loss)
            self.emit("log", message=Msg.of("training.log.eval_mlm", step=step, loss=f"{val_loss:.4f}"))
        else:
            metrics["perplexity"] = results.perplexity(val_loss)
            self.emit("log", message=Msg.of("training.log.eval_lm", step=step, loss=f"{val_loss:.4f}",
                                            ppl=f"{metrics['perplexity']:.4f}"))
        self.emit("eval", step=step, epoch=round(epoch, 3), metrics=metrics)
        if tr.settings.probes and self.rank == 0 and not self.sharded:  # live probes: what the model answers now
            from pipelines.training.probes import answer_probes

            self.emit("probes", step=step, answers=answer_probes(tr, unwrapped))
        self.last_eval = metrics
        self.board.evaluation(metrics)
        return metrics

    # ---- training -------------------------------------------------------------------------------------------
    def _micro_batch(self, model: Any, idx: list[int], group_rows: int, last: bool) -> tuple[float, int]:
        """Forward and backward of this process's share of one micro-batch; (weighted loss, tokens)."""
        tr = self.tr
        mine = idx[self.rank::self.world]
        rows, weight = (mine, len(mine) / group_rows) if mine else (idx[:1], 0.0)  # every process must step
        batch = {k: v.to(self.acc.device) for k, v in collate(tr.tokenizer, [tr.train_rows[i] for i in rows],
                                                               tr.task).items()}
        sync = nullcontext() if last or self.world == 1 else self.acc.no_sync(model)
        with sync:
            with self.acc.autocast():
                out = model(**batch)
            self.acc.backward(out.loss * (weight * self.world))  # DDP averages over the processes
        return float(out.loss.detach()) * weight, int(batch["attention_mask"].sum()) if mine else 0

    def _better(self, metrics: dict, p: Progress) -> bool:
        return metrics["val_loss"] < p.best_loss - self.control.min_delta

    def run(self, resume: bool) -> LoopResult:
        from transformers import get_linear_schedule_with_warmup

        tr, acc, s = self.tr, self.acc, self.tr.settings
        per_epoch, total, eval_every = tr.plan()
        n_batches = math.ceil(len(tr.train_rows) / s.batch_size)
        groups = max(1, math.ceil(n_batches / s.grad_accum))
        trainable = [p for p in tr.model.parameters() if p.requires_grad]
        param_groups = getattr(tr, "param_groups", None) or [{"params": trainable}]
        optimizer = torch.optim.AdamW(param_groups, lr=s.learning_rate, weight_decay=s.weight_decay)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(s.warmup_ratio * total), total)
        plugin = getattr(acc.state, "deepspeed_plugin", None)
        if plugin is not None:  # DeepSpeed wants the per-process batch when no dataloader is prepared
            plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = max(1, s.batch_size // self.world)
        model, optimizer = acc.prepare(tr.model, optimizer)
        ckpts = checkpoints.Checkpoints(self.run_dir, acc, self.control.keep_checkpoints, self.sharded)
        patience = self.control.effective_patience(s)
        p = Progress()
        start = checkpoints.latest(self.run_dir) if resume else None
        if start is not None:
            p = Progress(**{k: v for k, v in ckpts.load(start, model, optimizer, scheduler)["progress"].items()})
            self.last_eval = dict(p.best_metrics)
            self.emit("resumed", step=p.step)
            self.emit("log", message=Msg.of("training.log.resumed", step=p.step, total=total))
        else:
            if self.before is not None:
                self.before()
            metrics = self.evaluate(model, 0, 0.0)
            p.best_step, p.best_loss, p.best_metrics = 0, metrics["val_loss"], metrics
            ckpts.save(model, optimizer, scheduler, self._state(p), p.best_step)
            self.emit("best", step=0, val_loss=metrics["val_loss"])
        model.train()
        session_steps, session_time, stop, early = 0, 0.0, False, False
        lengths = [len(r["input_ids"]) for r in tr.train_rows]
        while p.step < total and not stop:
            epoch_index, first = divmod(p.step, groups)
            batches = length_grouped_batches(lengths, s.batch_size, torch.Generator().manual_seed(s.seed + epoch_index))
            for g in range(first, groups):
                group = batches[g * s.grad_accum:(g + 1) * s.grad_accum]
                started, rows = time.perf_counter(), sum(len(b) for b in group)
                loss, tokens = 0.0, 0
                for k, idx in enumerate(group):
                    part = self._micro_batch(model, idx, rows, k == len(group) - 1)
                    loss, tokens = loss + part[0], tokens + part[1]
                acc.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                flags = torch.tensor([loss, float(tokens), float(self.should_stop())], device=acc.device)
                loss, tokens, stop_votes = (acc.reduce(flags, "sum") if self.world > 1 else flags).tolist()
                p.step += 1
                if p.step == self.oom_at:
                    raise torch.OutOfMemoryError(f"test hook: out of memory at step {p.step}")
                if self.slow:
                    time.sleep(self.slow)
                elapsed = time.perf_counter() - started
                p.samples, p.tokens, p.train_time = p.samples + rows, p.tokens + int(tokens), p.train_time + elapsed
                session_steps, session_time = session_steps + 1, session_time + elapsed
                epoch = p.step / groups
                self.emit("step", step=p.step, total=total, epoch=round(epoch, 4), loss=loss,
                          samples_per_s=round(p.samples / p.train_time, 3),
                          tokens_per_s=round(p.tokens / p.train_time, 3),
                          eta_s=round((total - p.step) * session_time / session_steps, 1))
                self.board.step(p.step, loss, scheduler.get_last_lr()[0], epoch)
                stop = stop_votes > 0
                evaluated = p.step % eval_every == 0 or p.step == total or g == groups - 1
                saved = False
                if evaluated:
                    metrics = self.evaluate(model, p.step, epoch)
                    if self._better(metrics, p):
                        p.best_step, p.best_loss, p.best_metrics, p.bad_evals = p.step, metrics["val_loss"], metrics, 0
                        self.emit("best", step=p.step, val_loss=metrics["val_loss"])
                        ckpts.save(model, optimizer, scheduler, self._state(p), p.best_step)
                        saved = True
                    else:
                        p.bad_evals += 1
                    if patience and p.bad_evals >= patience and p.step < total:
                        early = True
                        self.emit("log", message=Msg.of("training.log.early_stop", step=p.step, best=p.best_step,
                                                        patience=patience))
                every = self.control.checkpoint_every
                due = (every and p.step % every == 0) or (not every and evaluated) or stop
                if due and not saved and p.step < total and not early:
                    ckpts.save(model, optimizer, scheduler, self._state(p), p.best_step)
                    self.emit("checkpoint", step=p.step)
                if stop or early or p.step >= total:
                    break
            if early:
                break
        self.model = model
        status = RunStatus.STOPPED if stop and p.step < total else RunStatus.COMPLETE
        if status == RunStatus.STOPPED:
            self.emit("log", message=Msg.of("training.log.stopped_at", step=p.step, total=total,
                                            eval_step=self.last_eval.get("step", 0)))
        metrics = self._export_metrics(status, p)
        metrics.update(samples_per_s=p.samples / p.train_time if p.train_time else 0.0,
                       tokens_per_s=p.tokens / p.train_time if p.train_time else 0.0,
                       train_seconds=round(p.train_time, 2), steps_done=p.step, total_steps=total,
                       best_step=p.best_step, early_stopped=early)
        if torch.cuda.is_available() and acc.device.type == "cuda":
            metrics["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(acc.device) / 2**20, 1)
        self.board.close()
        return LoopResult(status, metrics, p, early)

    def _export_metrics(self, status: RunStatus, p: Progress) -> dict:
        """The metrics of the exported adapter: the best checkpoint's (its weights are loaded back), or at Stop
        the last evaluation's (the adapter of the last step: the run can be resumed)."""
        if status == RunStatus.STOPPED or p.best_step is None or p.best_step == self.last_eval.get("step"):
            return dict(self.last_eval)
        best = self.run_dir / checkpoints.CHECKPOINTS / f"step-{p.best_step:07d}"
        if (best / checkpoints.WEIGHTS).is_file():
            checkpoints.load_weights(best, self.acc.unwrap_model(self.model))
            self.emit("log", message=Msg.of("training.log.best_exported", step=p.best_step,
                                            loss=f"{p.best_loss:.4f}"))
            return dict(p.best_metrics)
        return dict(self.last_eval)

    def _state(self, p: Progress) -> dict[str, Any]:
        return {"step": p.step, "progress": p.to_dict(), "time": time.time()}
