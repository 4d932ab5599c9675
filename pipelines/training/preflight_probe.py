"""The pre-flight estimate: a measured probe of the real training step on this device, scaled to the run.

The probe is a short child process (``python -m pipelines.training.preflight_probe FOLDER STARTED``) that does
what the training child does (same launch environment, threads and device, same ``LoraTrainer`` set-up and the
same ``TrainLoop`` micro-batch code): load the base model with LoRA, one warm-up step on the longest rows of the
data (the worst case for memory), three timed optimizer steps on random rows, one timed evaluation pass. Its
peak memory (RSS, CUDA max allocated) and timings make the estimate: steps (the step budget), time and memory,
and concrete advice when it will not fit.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import InputError
from pipelines.messages import Msg
from pipelines.training.data import PreparedData
from pipelines.training.settings import TrainSettings

PROBE_FILE, RESULT_FILE = "probe.json", "result.json"
TIMED_STEPS = 3
POLL_S = 0.3
FIT_MARGIN = 0.9  # a run fits when its measured peak is under this share of the memory there is


@dataclass
class ProbeResult:
    """What the probe measured (seconds, MiB)."""

    startup_s: float = 0.0  # process start to model ready (imports, load, LoRA, tokenizing)
    step_s: list[float] = field(default_factory=list)
    eval_row_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float = 0.0
    cuda_total_mb: float = 0.0
    device: str = "cpu"
    threads: int = 1
    oom: bool = False


@dataclass
class Estimate:
    """Steps, time and memory of the planned run, with the probe's numbers and advice (``notes``)."""

    steps: int
    steps_per_epoch: int
    evaluations: int
    train_rows: int
    val_rows: int
    step_s: float
    train_s: float
    eval_s: float
    startup_s: float
    total_s: float
    peak_mb: float
    memory_mb: float
    memory_kind: str  # "ram" or "cuda"
    fits: bool
    device: str
    probe: dict[str, Any] = field(default_factory=dict)
    notes: list[Msg] = field(default_factory=list)

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = [{"key": n.key, "params": {k: str(v) for k, v in n.params.items()}, "text": n.render(lang)}
                         for n in self.notes]
        return data


def available_ram_mb() -> float:
    """MemAvailable from /proc/meminfo (MiB); 0 when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def probe_examples(data: PreparedData, lengths: list[int], settings: TrainSettings, seed: int) -> list[dict]:
    """The rows the probe trains on: the longest step's worth first, then random rows for the timed steps and
    the evaluation (repeated when the data is smaller)."""
    per_step = settings.batch_size * settings.grad_accum
    wanted = math.ceil(per_step * (1 + TIMED_STEPS) / (1 - settings.val_split)) + 8
    longest = sorted(range(len(data.examples)), key=lambda i: -lengths[i])[:per_step]
    taken = set(longest)
    pool = [i for i in range(len(data.examples)) if i not in taken] or list(longest)
    random.Random(seed).shuffle(pool)  # a random sample of the other rows: their true length distribution
    picked = list(longest)
    while len(picked) < wanted:
        picked.extend(pool[: wanted - len(picked)])
    return [data.examples[i] for i in picked]


def evaluations(steps: int, per_epoch: int, every: int) -> int:
    """How many evaluations the loop makes: the one before step 1, every ``every`` steps, at each pass's end."""
    return 1 + sum(1 for s in range(1, steps + 1) if s % every == 0 or s == steps or s % per_epoch == 0)


class Prober:
    """Runs the probe child for a planned run and turns its measurements into an :class:`Estimate`."""

    def __init__(self, timeout: float = 600.0, memory_limit_mb: float = 0.0) -> None:
        self.timeout, self.memory_limit_mb = timeout, memory_limit_mb

    def measure(self, data: PreparedData, settings: TrainSettings, location: str, lengths: list[int],
                launch_plan: Any, allow_pickle: bool = False, cancel: Callable[[], bool] | None = None,
                ) -> ProbeResult | None:
        """Run the probe child (device, threads and environment of ``launch_plan``); its measurements, or None
        when ``cancel()`` turned true meanwhile (a run started training: the probe is stopped, the run gets the
        machine)."""
        from pipelines.training.launch import ROOT, child_env

        folder = Path(tempfile.mkdtemp(prefix="lmw-preflight-"))
        try:
            spec = {"task": data.task, "labels": data.labels, "location": location, "allow_pickle": allow_pickle,
                    "settings": settings.to_dict(), "device": launch_plan.device, "threads": launch_plan.threads,
                    "precision": launch_plan.precision,
                    "examples": probe_examples(data, lengths, settings, settings.seed)}
            (folder / PROBE_FILE).write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
            argv = [sys.executable, "-m", __name__, str(folder), str(time.time())]
            with open(folder / "stderr.txt", "wb") as errors:
                proc = subprocess.Popen(argv, cwd=ROOT, env=child_env(launch_plan), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=errors)
                if not self._wait(proc, cancel):
                    return None
            result = folder / RESULT_FILE
            if not result.is_file():
                tail = (folder / "stderr.txt").read_text("utf-8", "replace").strip().splitlines()[-1:] or [""]
                raise InputError("preflight.probe_failed", detail=tail[0][:300])
            return ProbeResult(**json.loads(result.read_text(encoding="utf-8")))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _wait(self, proc: subprocess.Popen, cancel: Callable[[], bool] | None) -> bool:
        """Wait for the probe child; False (child killed) when cancelled; InputError past the timeout."""
        deadline = time.monotonic() + self.timeout
        while proc.poll() is None:
            cancelled = cancel is not None and cancel()
            if cancelled or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                if cancelled:
                    return False
                raise InputError("preflight.probe_timeout", seconds=int(self.timeout))
            time.sleep(POLL_S)
        return True

    def estimate(self, probe: ProbeResult, settings: TrainSettings, train_rows: int, val_rows: int,
                 suggested_max_length: int) -> Estimate:
        """Scale the probe to the run: steps x measured step time, evaluations x measured evaluation time."""
        from pipelines.training.defaults import eval_interval, step_budget, steps_per_epoch

        steps, per_epoch = step_budget(train_rows, settings), steps_per_epoch(train_rows, settings)
        n_evals = evaluations(steps, per_epoch, eval_interval(steps, per_epoch, settings))
        timed = sorted(probe.step_s) or [0.0]
        step_s = timed[len(timed) // 2]  # the median of the timed steps
        train_s, eval_s = steps * step_s, n_evals * val_rows * probe.eval_row_s
        # The before and after evaluations load the model again and score the validation rows once each.
        extra_s = 2 * (probe.startup_s + val_rows * probe.eval_row_s)
        cuda = probe.device == "cuda"
        peak = probe.peak_cuda_mb if cuda else probe.peak_rss_mb
        memory = self.memory_limit_mb or (probe.cuda_total_mb if cuda else available_ram_mb())
        fits = not probe.oom and (not memory or peak <= FIT_MARGIN * memory)
        total = probe.startup_s + train_s + eval_s + extra_s
        est = Estimate(steps, per_epoch, n_evals, train_rows, val_rows, round(step_s, 4), round(train_s, 1),
                       round(eval_s, 1), round(probe.startup_s, 1), round(total, 1),
                       round(peak, 1), round(memory, 1), "cuda" if cuda else "ram", fits, probe.device,
                       asdict(probe))
        if not fits:
            est.notes = advice(settings, suggested_max_length, peak, memory, probe.oom)
        return est


def advice(settings: TrainSettings, suggested: int, peak: float, memory: float, oom: bool) -> list[Msg]:
    """Concrete changes that lower the peak memory: half the batch (twice the accumulation keeps the effective
    batch), the suggested max length, gradient checkpointing."""
    notes = [Msg.of("preflight.oom_probe") if oom else
             Msg.of("preflight.no_fit", peak=f"{peak:,.0f}", memory=f"{memory:,.0f}")]
    if settings.batch_size > 1:
        notes.append(Msg.of("preflight.advice.batch", batch=max(1, settings.batch_size // 2),
                            accum=settings.grad_accum * 2))
    if suggested < settings.max_length:
        notes.append(Msg.of("preflight.advice.max_length", max_length=suggested, now=settings.max_length))
    if not settings.gradient_checkpointing:
        notes.append(Msg.of("preflight.advice.checkpointing"))
    return notes


# ---- the probe child ---------------------------------------------------------------------------------------
def _step(loop: Any, model: Any, optimizer: Any, rows: list[int], batch_size: int) -> float:
    """One optimizer step of the real loop's micro-batch code on ``rows``; seconds."""
    started = time.perf_counter()
    group = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    for k, idx in enumerate(group):
        loop._micro_batch(model, idx, len(rows), k == len(group) - 1)
    trainable = [p for p in model.parameters() if p.requires_grad]
    loop.acc.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if loop.slow:
        time.sleep(loop.slow)
    if loop.acc.device.type == "cuda":
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - started


def probe_main(folder: Path, started: float) -> ProbeResult:
    """The child: set up like the training child, step, evaluate, measure."""
    import resource

    import torch
    from accelerate import Accelerator

    from pipelines.training.child import resolve_precision
    from pipelines.training.data import DataReport
    from pipelines.training.hardware import ControlSettings
    from pipelines.training.loop import TrainLoop
    from pipelines.training.trainer import LoraTrainer

    spec = json.loads((folder / PROBE_FILE).read_text(encoding="utf-8"))
    torch.set_num_threads(int(spec["threads"] or 1))
    device = "cuda" if spec["device"] == "cuda" and torch.cuda.is_available() else "cpu"
    acc = Accelerator(cpu=device == "cpu", mixed_precision=resolve_precision(spec["precision"] or "auto", device))
    settings = TrainSettings.from_dict(spec["settings"])
    examples = spec["examples"]
    data = PreparedData(spec["task"], examples, spec["labels"], DataReport(len(examples), len(examples)))
    result = ProbeResult(device=device, threads=torch.get_num_threads())
    trainer = LoraTrainer(data, settings, spec["location"], device=acc.device.type, allow_pickle=spec["allow_pickle"])
    try:
        trainer.setup()
        loop = TrainLoop(trainer, acc, ControlSettings(), folder, lambda *a, **k: None, lambda: False)
        loop.board.enabled = False
        optimizer = torch.optim.AdamW(trainer.param_groups or [p for p in trainer.model.parameters()
                                                               if p.requires_grad], lr=settings.learning_rate)
        model, optimizer = acc.prepare(trainer.model, optimizer)
        model.train()
        result.startup_s = time.time() - started
        per_step, n = settings.batch_size * settings.grad_accum, len(trainer.train_rows)
        longest = sorted(range(n), key=lambda i: -len(trainer.train_rows[i]["input_ids"]))[:per_step]
        _step(loop, model, optimizer, longest, settings.batch_size)  # warm-up, and the memory's worst case
        order = [i for i in range(n) if i not in set(longest)]
        order = order if len(order) >= per_step else list(range(n))  # the timed steps: typical rows
        random.Random(settings.seed).shuffle(order)
        cycle = (order * (1 + per_step * TIMED_STEPS // len(order)))[: per_step * TIMED_STEPS]
        result.step_s = [_step(loop, model, optimizer, cycle[k * per_step:(k + 1) * per_step], settings.batch_size)
                         for k in range(TIMED_STEPS)]
        began = time.perf_counter()
        loop.evaluate(model, 0, 0.0)
        result.eval_row_s = (time.perf_counter() - began) / max(len(trainer.val_rows), 1)
    except (torch.OutOfMemoryError, MemoryError):
        result.oom = True
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device == "cuda":
        result.peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20
        result.cuda_total_mb = torch.cuda.mem_get_info()[1] / 2**20
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0])
    result = probe_main(folder, float(args[1]) if len(args) > 1 else time.time())
    (folder / RESULT_FILE).write_text(json.dumps(asdict(result)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
