"""Batch auto precision's speed measurements, kept on disk per CPU and model shape.

Whether int8 or bfloat16 beats float32 depends on the CPU and on the model's shape, not on its trained weights;
whether it changes predictions depends on the weights. So the paired speed-ups a calibration measures are kept in
``<cache>/classify_speed.json`` under the machine (CPU, vector capability, threads, torch version) and the shape
(architecture, width, depth), adding up over calibrations (the last ``KEEP`` pairs per candidate). A later model
of that shape on this CPU (another fine-tuned MiniLM, the same one after a restart) then only checks agreement,
on the fastest candidate whose kept pairs clear the margin, and skips the timing trials. The install step
(``python -m pipelines.prepare``) measures the embedded MiniLM's shape, so a fresh install's first CSV does too.

Only a *faster* verdict is used: a candidate needs ``MIN_PAIRS`` kept pairs whose median clears ``MIN_SPEEDUP``;
anything else (too few pairs, not faster) means a full calibration, as without this memory, so one noisy
measurement never locks auto into float32.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from pipelines.models.precision_probe import machine_tag, median

log = logging.getLogger(__name__)

KEEP = 24  # paired speed-ups kept per candidate (the newest)
MIN_PAIRS = 4


def speed_file(cache_dir: Path) -> Path:
    """Where the measurements are kept (beside the embedded models' cache)."""
    return Path(cache_dir) / "classify_speed.json"


def machine_key(shape: str) -> str:
    """The file's key: this CPU (name, vector capability, threads), the torch version and the model shape."""
    import torch

    return f"{machine_tag()}|torch {torch.__version__}||{shape}"


def shape_key(model: Any) -> str:
    """What the speed depends on besides the CPU: architecture, width, depth, feed-forward size, heads."""
    config = getattr(model, "config", None)
    parts = [getattr(config, name, "?") for name in
             ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads")]
    return "|".join(str(p) for p in parts)


class SpeedMemory:
    """The paired speed-ups per (machine, shape, candidate) in one JSON file; thread-safe within the process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def pairs(self, shape: str) -> dict[str, list[float]]:
        """The kept paired speed-ups (float32 seconds / candidate seconds) per candidate for ``shape`` here."""
        entry = self._read().get(machine_key(shape), {})
        return {str(k): [float(x) for x in v] for k, v in entry.items() if isinstance(v, list)}

    def known_speeds(self, shape: str, min_speedup: float) -> dict[str, float]:
        """The median kept speed-up of each candidate known to be faster here, fastest first; empty when nothing
        is known to be (calibrate)."""
        known = {name: median(v) for name, v in self.pairs(shape).items() if len(v) >= MIN_PAIRS}
        faster = sorted((n for n, speed in known.items() if speed >= min_speedup), key=known.__getitem__, reverse=True)
        return {name: known[name] for name in faster}

    def ranked(self, shape: str, min_speedup: float) -> list[str]:
        """Candidates known to be faster here, fastest first; empty when nothing is known to be (calibrate)."""
        return list(self.known_speeds(shape, min_speedup))

    def add(self, shape: str, pairs: dict[str, list[float]]) -> None:
        """Keep new paired speed-ups (the newest ``KEEP`` per candidate); a failed write only loses them."""
        pairs = {name: values for name, values in pairs.items() if values}
        if not pairs:
            return
        with self._lock:
            data = self._read()
            entry = data.setdefault(machine_key(shape), {})
            for name, values in pairs.items():
                entry[name] = (list(entry.get(name, [])) + [round(float(v), 4) for v in values])[-KEEP:]
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, suffix=".tmp",
                                                 encoding="utf-8") as handle:
                    json.dump(data, handle, indent=1, sort_keys=True)
                os.replace(handle.name, self.path)
            except OSError:
                log.warning("could not keep the precision speed measurements in %s", self.path, exc_info=True)
