"""Starting the training child with a real launcher, and knowing later whether it still runs.

* ``torch.distributed.run`` (torchrun) for the CPU (gloo) and DDP on GPUs: it starts N processes on every kind of
  device (``accelerate launch --cpu --num_processes 2`` was checked to start only one);
* ``accelerate launch`` with a generated ``accelerate.yaml`` for DeepSpeed ZeRO-2/3 and FSDP.

Multi-node: with ``NNODES`` > 1 in the environment the command uses ``--nnodes/--node_rank/--master_addr/
--master_port`` from ``NNODES``, ``NODE_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` instead of ``--standalone``.
The child runs in its own process group (it outlives the app); ``process.json`` holds its pid and start time so
a restarted app can tell it from a reused pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipelines.training.hardware import LaunchPlan

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository root: ``pipelines`` is importable from it
PROCESS_FILE = "process.json"
OUTPUT_FILE = "output.log"
ACCELERATE_FILE = "accelerate.yaml"
CHILD_MODULE = "pipelines.training.child"


def node_args(env: dict[str, str] | None = None) -> list[str]:
    """``--standalone`` on one machine; the rendezvous of several machines from the usual variables."""
    env = dict(os.environ if env is None else env)
    if int(env.get("NNODES", "1") or 1) <= 1:
        return ["--standalone"]
    return ["--nnodes", env["NNODES"], "--node_rank", env.get("NODE_RANK", "0"),
            "--master_addr", env.get("MASTER_ADDR", "127.0.0.1"), "--master_port", env.get("MASTER_PORT", "29500")]


def accelerate_yaml(plan: LaunchPlan) -> str:
    """An ``accelerate`` config file for DeepSpeed ZeRO-2/3 or FSDP on ``plan.processes`` GPUs."""
    precision = plan.precision if plan.precision != "auto" else "bf16"
    lines = ["compute_environment: LOCAL_MACHINE", f"num_processes: {plan.processes}", "num_machines: 1",
             "machine_rank: 0", f"mixed_precision: {precision}", "use_cpu: false",
             f"gpu_ids: {','.join(map(str, plan.gpu_ids)) or 'all'}"]
    if plan.strategy.startswith("deepspeed"):
        stage = 3 if plan.strategy.endswith("3") else 2
        lines += ["distributed_type: DEEPSPEED", "deepspeed_config:", f"  zero_stage: {stage}",
                  "  gradient_accumulation_steps: 1", "  gradient_clipping: 1.0", "  offload_optimizer_device: none",
                  "  offload_param_device: none", f"  zero3_init_flag: {'true' if stage == 3 else 'false'}"]
    else:
        lines += ["distributed_type: FSDP", "fsdp_config:", "  fsdp_version: 2",
                  "  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP", "  fsdp_state_dict_type: SHARDED_STATE_DICT",
                  "  fsdp_cpu_ram_efficient_loading: true", "  fsdp_reshard_after_forward: true"]
    return "\n".join(lines) + "\n"


def command(plan: LaunchPlan, run_dir: Path, *, resume: bool = False, out: str | None = None,
            python: str = sys.executable, env: dict[str, str] | None = None) -> list[str]:
    """The launcher command line for ``run_dir`` (argv)."""
    tail = ["-m", CHILD_MODULE, str(run_dir)] + (["--resume"] if resume else []) + (["--out", out] if out else [])
    if plan.uses_accelerate_launch:
        return [python, "-m", "accelerate.commands.launch", "--config_file", str(Path(run_dir) / ACCELERATE_FILE),
                *tail]
    return [python, "-m", "torch.distributed.run", "--nproc_per_node", str(plan.processes), *node_args(env), *tail]


def child_env(plan: LaunchPlan, base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: the repository importable, threads per process, the GPUs it may use."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = str(plan.threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, plan.gpu_ids)) if plan.device == "cuda" else ""
    return env


def shell_command(plan: LaunchPlan, run_dir: Path, run_id: str) -> str:
    """A command that reproduces the run from a shell into ``./reproduced/<run_id>`` (the same spec and data)."""
    visible = ",".join(map(str, plan.gpu_ids)) if plan.device == "cuda" else ""
    argv = command(plan, run_dir, out=f"reproduced/{run_id}", python="python", env={})
    return (f"cd {shlex.quote(str(ROOT))} && CUDA_VISIBLE_DEVICES={visible} OMP_NUM_THREADS={plan.threads} "
            f"PYTHONPATH=. {shlex.join(argv)}")


def write_files(plan: LaunchPlan, run_dir: Path, run_id: str, final_dir: Path | None = None) -> str:
    """``accelerate.yaml`` (DeepSpeed/FSDP) and ``reproduce.sh`` in the run folder; returns the shell command
    (naming ``final_dir``, where the folder will be once the run ends)."""
    run_dir = Path(run_dir)
    if plan.uses_accelerate_launch:
        (run_dir / ACCELERATE_FILE).write_text(accelerate_yaml(plan), encoding="utf-8")
    line = shell_command(plan, Path(final_dir or run_dir), run_id)
    script = run_dir / "reproduce.sh"
    script.write_text("#!/bin/sh\n# Trains this run again from its spec.json and data.json into ./reproduced/\n"
                      f"{line}\n", encoding="utf-8")
    script.chmod(0o755)
    return line


def start(plan: LaunchPlan, run_dir: Path, *, resume: bool = False) -> subprocess.Popen:
    """Start the launcher in its own process group, output to ``output.log``; record pid and start time."""
    run_dir = Path(run_dir)
    with open(run_dir / OUTPUT_FILE, "ab") as output:
        proc = subprocess.Popen(command(plan, run_dir, resume=resume), cwd=ROOT, env=child_env(plan),
                                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)
    record = {"pid": proc.pid, "start_time": start_time(proc.pid), "resume": resume}
    (run_dir / PROCESS_FILE).write_text(json.dumps(record), encoding="utf-8")
    return proc


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of ``/proc/<pid>/stat``), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def read_process(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(run_dir) / PROCESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def alive(record: dict[str, Any]) -> bool:
    """Whether the recorded launcher still runs (same pid and same start time, not a zombie)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    now = start_time(pid)
    if now is None or (record.get("start_time") and now != record["start_time"]):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from ``/proc``: torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def worker_records(run_dir: Path) -> list[dict[str, Any]]:
    """The training processes the run's event log names (each rank writes its pid and start time)."""
    from pipelines.training.progress import LOG_FILE, EventTail

    tail = EventTail(Path(run_dir) / LOG_FILE)
    try:
        return [r for r in tail.read() if r.get("event") == "rank" and isinstance(r.get("pid"), int)]
    finally:
        tail.close()


def run_alive(run_dir: Path) -> bool:
    """Whether the launcher or any training process of the run in ``run_dir`` still runs."""
    return alive(read_process(run_dir)) or any(alive(r) for r in worker_records(run_dir))


def kill(record: dict[str, Any], run_dir: Path | None = None) -> None:
    """SIGKILL the launcher, everything below it, and the run's training processes (``run_dir``'s log)."""
    targets = [record] if alive(record) else []
    if targets:
        targets += [{"pid": pid, "start_time": start_time(pid)} for pid in descendants(int(record["pid"]))]
    if run_dir is not None:
        targets += [r for r in worker_records(run_dir) if alive(r)]
    for target in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(target["pid"]), signal.SIGKILL)
