"""Seconds until an unknown hub id fails with no network and HF_HUB_OFFLINE unset: the manager (reachability
check, then local-cache-only) against a plain ``AutoConfig.from_pretrained`` (huggingface_hub's retries).

Run without network: env -u HF_HUB_OFFLINE .venv/bin/python bench/hub_offline.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("TRANSFORMERS_OFFLINE", None)

from pipelines.config import AppConfig  # noqa: E402
from pipelines.models import ModelManager  # noqa: E402
from pipelines.models.hub import HubCheck  # noqa: E402

REF = "nobody-here/no-such-model-xyz"


def timed(fn) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        fn()
        outcome = "loaded?!"
    except Exception as exc:  # noqa: BLE001 - we only time the failure
        outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}"
    return time.perf_counter() - started, outcome


def main() -> None:
    from transformers import AutoConfig

    if HubCheck().reachable():
        print("The Hub is reachable from here; this benchmark needs a machine without network.")
        return
    with tempfile.TemporaryDirectory() as data:
        manager = ModelManager(AppConfig(data_dir=Path(data)))
        manager.hub.reset()
        first, outcome = timed(lambda: manager.load(REF))
        print(f"manager.load (first, probes the Hub): {first:6.2f} s  {outcome}")
        cached, _ = timed(lambda: manager.load(REF))
        print(f"manager.load (cached reachability):   {cached:6.2f} s")
    baseline, outcome = timed(lambda: AutoConfig.from_pretrained(REF))
    print(f"AutoConfig.from_pretrained baseline:  {baseline:6.2f} s  {outcome}")
    print(f"speed-up: {baseline / max(first, 1e-3):.0f}x (first), {baseline / max(cached, 1e-3):.0f}x (cached)")


if __name__ == "__main__":
    main()
