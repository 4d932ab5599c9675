"""Checkpoints of a run in ``<run>/checkpoints/step-NNNNNNN/``: trainable weights (``adapter.safetensors``),
optimizer, scheduler, each process's RNG states, and ``state.json`` (step, sampler position, counters, the best
evaluation so far). DeepSpeed and FSDP shard the optimizer, so there ``accelerate``'s own ``save_state`` is used.
A checkpoint is written into ``step-N.part`` and renamed when whole; only the last K are kept, plus the best."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

CHECKPOINTS = "checkpoints"
WEIGHTS = "adapter.safetensors"
STATE = "state.json"


def step_of(folder: Path) -> int:
    return int(folder.name.split("-", 1)[1])


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Whole checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and not p.name.endswith(".part")
             and (p / STATE).is_file()]
    return sorted(found, key=step_of)


def latest(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def read_state(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / STATE).read_text(encoding="utf-8"))


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


class Checkpoints:
    """Saves, loads and prunes the checkpoints of one run (every process calls ``save`` and ``load``)."""

    def __init__(self, run_dir: Path, accelerator: Any, keep: int = 2, sharded: bool = False) -> None:
        self.root = Path(run_dir) / CHECKPOINTS
        self.acc, self.keep, self.sharded = accelerator, keep, sharded

    def save(self, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any], best_step: int | None) -> Path:
        """Write checkpoint ``state["step"]`` and prune; returns its folder."""
        import torch
        from safetensors.torch import save_file

        acc = self.acc
        final = self.root / f"step-{int(state['step']):07d}"
        part = final.with_name(final.name + ".part")
        if acc.is_main_process:
            shutil.rmtree(part, ignore_errors=True)
            part.mkdir(parents=True)
        acc.wait_for_everyone()
        if self.sharded:
            acc.save_state(str(part / "accelerate"))
        torch.save(_rng_state(), part / f"rng-{acc.process_index}.pt")
        if acc.is_main_process:
            if not self.sharded:
                save_file(trainable_state(acc.unwrap_model(model)), str(part / WEIGHTS))
                torch.save(optimizer.state_dict(), part / "optimizer.pt")
            torch.save(scheduler.state_dict(), part / "scheduler.pt")
            (part / STATE).write_text(json.dumps(state, default=str), encoding="utf-8")
        acc.wait_for_everyone()
        if acc.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            part.rename(final)
            self.prune(best_step)
        acc.wait_for_everyone()
        return final

    def prune(self, best_step: int | None) -> None:
        """Delete all but the last ``keep`` checkpoints and the best one."""
        found = list_checkpoints(self.root.parent)
        keep = {p.name for p in found[-self.keep:]}
        for folder in found:
            if folder.name not in keep and step_of(folder) != best_step:
                shutil.rmtree(folder, ignore_errors=True)

    def load(self, folder: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
        """Restore everything of checkpoint ``folder`` (the model is already prepared); returns its state."""
        import torch

        if self.sharded:
            self.acc.load_state(str(folder / "accelerate"))
        else:
            load_weights(folder, self.acc.unwrap_model(model))
            optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=False))
        scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=False))
        rng = folder / f"rng-{self.acc.process_index}.pt"
        if rng.is_file():
            _set_rng_state(torch.load(rng, weights_only=False))
        return read_state(folder)


def load_weights(folder: Path, model: Any) -> None:
    """Copy a checkpoint's trainable weights into ``model`` (the unwrapped PEFT model)."""
    from safetensors.torch import load_file

    tensors = load_file(str(Path(folder) / WEIGHTS))
    missing = set(tensors) - {n for n, _ in model.named_parameters()}
    if missing:
        raise KeyError(sorted(missing)[:3])  # a programming error: the checkpoint is of another model
    model.load_state_dict(tensors, strict=False)


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
