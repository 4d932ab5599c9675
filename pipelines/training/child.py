"""The launched training process: ``python -m pipelines.training.child RUN_DIR [--out DIR] [--resume]``.

Started by ``torch.distributed.run`` (CPU/gloo and multi-GPU) or ``accelerate launch`` (DeepSpeed/FSDP) on the
``spec.json`` and ``data.json`` of a run folder. Every process creates an ``accelerate.Accelerator``; the main
process alone writes the event log, checkpoints' shared files, the adapter and ``run.json``. A failure in any
process appends one keyed ``failed`` record and exits 1; the app (or the next start of the app) marks the run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from pipelines.errors import WorkbenchError
from pipelines.messages import Msg
from pipelines.models.kinds import Precision
from pipelines.training.enums import RunStatus, TrainTask, task_key
from pipelines.training.launch import start_time
from pipelines.training.progress import EventLog, msg_record
from pipelines.training.spec import DATA_FILE, SPEC_FILE, RunSpec, read_data
from pipelines.training.writer import move_into_place, now_iso, read_meta, update_meta, write_meta

STOP_FILE = "STOP"
OOM_KEY = "training.oom"
DISPLAY_PRECISION = (("bf16", Precision.BFLOAT16), ("fp16", Precision.FLOAT16), ("no", Precision.FLOAT32))


def error_message(exc: BaseException) -> Msg:
    """One keyed sentence for a failure: out of memory, a keyed error, or the exception's first line."""
    import torch

    text = str(exc)
    if isinstance(exc, torch.OutOfMemoryError | MemoryError) or "out of memory" in text.lower():
        return Msg(OOM_KEY)
    if isinstance(exc, WorkbenchError):
        return exc.msg
    first = text.strip().splitlines()[0] if text.strip() else ""
    return Msg.of("training.failed", kind=type(exc).__name__, detail=first[:300])


def resolve_precision(wanted: str, device: str) -> str:
    """auto: bf16 where the GPU supports it, fp16 on older GPUs, none on the CPU."""
    import torch

    if device != "cuda":
        return "no"
    if wanted == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return wanted


def call_hook(name: str, run_dir: Path, spec: RunSpec, events: EventLog) -> None:
    """``before_after.<name>(run_dir, spec)`` when that module exists; a failure is logged, the run goes on."""
    try:
        module = importlib.import_module("pipelines.training.before_after")
    except ModuleNotFoundError:
        return
    try:
        getattr(module, name)(run_dir, spec)
    except Exception as exc:  # noqa: BLE001 - an optional evaluation never fails the run
        events.log(Msg.of("training.log.hook_failed", hook=name, detail=(str(exc).splitlines() or [""])[0][:200]))


class Child:
    """One process of a launched run."""

    def __init__(self, spec_dir: Path, out: Path, resume: bool) -> None:
        self.spec_dir, self.out, self.resume = spec_dir, out, resume
        self.spec = RunSpec.read(spec_dir)
        self.events = EventLog(out)
        self.acc: Any = None

    @property
    def main(self) -> bool:
        return self.acc is None or self.acc.is_main_process

    def emit(self, event: str, message: Msg | None = None, **fields: Any) -> None:
        if not self.main:
            return
        if event == "log" and message is not None:
            self.events.log(message)
        else:
            self.events.write(event, **fields)

    def run(self) -> None:
        import torch
        from accelerate import Accelerator

        from pipelines.training.loop import TrainLoop
        from pipelines.training.trainer import LoraTrainer

        spec, plan = self.spec, self.spec.plan
        torch.set_num_threads(int(plan.get("threads") or 1))
        device = "cuda" if plan.get("device") == "cuda" and torch.cuda.is_available() else "cpu"
        precision = resolve_precision(str(plan.get("precision") or "auto"), device)
        self.acc = acc = Accelerator(cpu=device == "cpu", mixed_precision=precision)
        self.events.write("rank", rank=acc.process_index, world_size=acc.num_processes, pid=os.getpid(),
                          start_time=start_time(os.getpid()))
        data = read_data(self.spec_dir)
        trainer = LoraTrainer(data, spec.settings, spec.location, device=acc.device.type,
                              on_event=lambda e: self.emit("log", e.message) if e.message else None,
                              allow_pickle=spec.allow_pickle)
        self.emit("log", Msg.of("training.log.loading", model=spec.base_model, task=Msg(task_key(spec.task)),
                                device=device.upper(), threads=torch.get_num_threads()))
        trainer.setup()
        trainer.precision = dict(DISPLAY_PRECISION)[precision]
        total = trainer.plan()[1]
        self.emit("started", world_size=acc.num_processes, device=device, precision=str(trainer.precision),
                  total_steps=total, resumed=self.resume, strategy=plan.get("strategy", "ddp"))
        self.emit("log", Msg.of("training.log.processes", processes=acc.num_processes,
                                device=device.upper(), precision=str(trainer.precision)))
        loop = TrainLoop(trainer, acc, spec.control, self.out, self.emit, (self.out / STOP_FILE).exists,
                         sharded=plan.get("strategy", "ddp") != "ddp", before=lambda: self.before(trainer))
        result = loop.run(self.resume)
        acc.wait_for_everyone()
        if self.main:
            self.finish(trainer, loop, result)
        acc.wait_for_everyone()

    def before(self, trainer: Any) -> None:
        """On the main process of a fresh run, before the first step: samples and the before evaluation."""
        if not self.main:
            return
        task = TrainTask(trainer.task)
        if task.generative:
            prompts = trainer.val_examples[:3]
            (self.out / "samples_before.json").write_text(json.dumps(trainer.generate(prompts), ensure_ascii=False),
                                                          encoding="utf-8")
        if task.domain:  # held-out domain text and the general sample, before the first step
            from pipelines.training.domain import DomainEval, write_before

            write_before(self.out, DomainEval(trainer).run(trainer.model))
        if task != TrainTask.DOMAIN_MLM:  # the Evaluate tab's metrics need a classifier or a causal LM
            call_hook("evaluate_before", self.out, self.spec, self.events)

    def finish(self, trainer: Any, loop: Any, result: Any) -> None:
        """Main process: save adapter and tokenizer, evaluate after, write ``run.json``, rename into place."""
        from pipelines.training.results import chance_check
        from pipelines.training.trainer import generation_text

        metrics, status = dict(result.metrics), result.status
        model = self.acc.unwrap_model(loop.model)
        trainer.model = model
        if trainer.task == TrainTask.CLASSIFICATION:
            metrics.update(chance_check(metrics, len(trainer.data.labels)))
            if metrics.get("under_trained"):
                self.emit("log", Msg.of("training.log.under_trained", loss=f"{metrics['val_loss']:.3f}",
                                        chance=f"{metrics['chance_loss']:.3f}"))
        before_file = self.out / "samples_before.json"
        task = TrainTask(trainer.task)
        self._domain_and_probes(trainer, metrics)
        if task.generative and before_file.is_file():
            prompts = trainer.val_examples[:3]
            before = json.loads(before_file.read_text(encoding="utf-8"))
            metrics["generations"] = [{"prompt": generation_text(e), "before": b, "after": a}
                                      for e, b, a in zip(prompts, before, trainer.generate(prompts), strict=False)]
        shutil.rmtree(self.out / "adapter", ignore_errors=True)
        from pipelines.training.domain import save_adapter

        save_adapter(model, self.out / "adapter")
        trainer.tokenizer.save_pretrained(str(self.out / "tokenizer"))
        if task != TrainTask.DOMAIN_MLM:
            call_hook("evaluate_after", self.out, self.spec, self.events)
        update_meta(self.out, status=status, metrics=metrics, finished=now_iso(), device=trainer.device,
                    precision=str(trainer.precision), world_size=self.acc.num_processes,
                    resumable=status == RunStatus.STOPPED, best_step=metrics.get("best_step"),
                    error="", error_key="", error_params={})
        (self.out / STOP_FILE).unlink(missing_ok=True)
        run_id = self.out.name[1:-4] if self.out.name.startswith(".") else self.out.name
        self.emit("log", Msg.of("training.log.saved", run_id=run_id, status=Msg.of(f"training.status.{status}")))
        self.emit("finished", status=str(status), metrics=metrics, resumable=status == RunStatus.STOPPED)
        move_into_place(self.out)

    def _domain_and_probes(self, trainer: Any, metrics: dict) -> None:
        """Into ``metrics``: the probe answers of every evaluation, and for domain adaptation the held-out and
        general-text losses before and after (``metrics["domain"]``)."""
        from pipelines.training.domain import DomainEval, read_before
        from pipelines.training.probes import run_history

        if trainer.settings.probes:
            metrics["probes"] = run_history(self.out)
        if not TrainTask(trainer.task).domain:
            return
        evaluation = DomainEval(trainer)
        after = evaluation.run(trainer.model)
        before = read_before(self.out) or {}
        record = metrics["domain"] = evaluation.record(before, after)
        value = "loss" if record["measure"] == "masked_loss" else "perplexity"
        for name in ("held_out", "general"):
            if name in before:
                self.emit("log", Msg.of(f"training.log.domain_{name}", before=f"{before[name][value]:.3f}",
                                        after=f"{after[name][value]:.3f}",
                                        measure=Msg.of(f"probes.measure.{record['measure']}")))

    def fail(self, exc: BaseException) -> None:
        """Any process: one keyed ``failed`` record (the app or the next start marks the run)."""
        rank = self.acc.process_index if self.acc is not None else 0
        self.events.write("failed", rank=rank, **msg_record(error_message(exc)))


def prepare_out(spec_dir: Path, out: Path) -> None:
    """A run into another folder (reproducing a run from a shell): copy the spec and data, start ``run.json``."""
    if out == spec_dir or (out / SPEC_FILE).is_file():
        return
    out.mkdir(parents=True, exist_ok=True)
    for name in (SPEC_FILE, DATA_FILE):
        shutil.copyfile(spec_dir / name, out / name)
    meta = read_meta(spec_dir)
    meta.update(id=out.name, status=RunStatus.RUNNING, created=now_iso(), metrics={}, reproduced_from=str(spec_dir))
    write_meta(out, meta)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.training.child", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder holding spec.json and data.json")
    parser.add_argument("--out", type=Path, default=None, help="write the run here instead (reproduce a run)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the folder")
    args = parser.parse_args(argv)
    spec_dir = args.run_dir.resolve()
    out = (args.out or args.run_dir).resolve()
    if int(os.environ.get("RANK", "0")) == 0:
        prepare_out(spec_dir, out)
    else:
        import time

        for _ in range(600):  # the main process copies the spec first
            if (out / SPEC_FILE).is_file():
                break
            time.sleep(0.1)
    child = Child(out if (out / SPEC_FILE).is_file() else spec_dir, out, args.resume)
    try:
        child.run()
    except BaseException as exc:  # noqa: BLE001 - reported in the event log, then the process exits 1
        child.fail(exc)
        raise SystemExit(1) from None
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
