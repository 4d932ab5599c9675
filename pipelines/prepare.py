"""Prepare the embedded models once (``python -m pipelines.prepare``): checks packages, fills the cache."""

from __future__ import annotations

import sys
import time

from pipelines.config import AppConfig
from pipelines.errors import ModelLoadError
from pipelines.models.embedded import EMBEDDED, ensure_local_folder, is_cached, source_path


def main() -> int:
    config = AppConfig.from_env()
    config.ensure_dirs()
    ok = True
    for spec in EMBEDDED.values():
        started = time.perf_counter()
        try:
            source_path(spec)
            if spec.fmt == "gguf":
                state = "cached" if is_cached(spec, config.cache_dir) else "converted"
                ensure_local_folder(spec, config.cache_dir)
            else:
                state = "found"
        except ModelLoadError as exc:
            print(f"[prepare] {spec.name}: {exc}", file=sys.stderr)
            ok = False
            continue
        print(f"[prepare] {spec.name}: {state} in {time.perf_counter() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
