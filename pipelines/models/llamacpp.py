"""GGUF models for the llama.cpp engine: where a reference's GGUF file is, and building a ``llama_cpp.Llama``.

``llama_cpp`` is imported only when a model is built (or when :func:`llamacpp_missing` checks it); nothing here
imports torch. The prompt is tokenised by the same Hugging Face tokenizer the transformers path uses (read from the
de-quantised folder, a run's tokenizer, or the GGUF file itself), so both engines see the same prompt ids.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pipelines.errors import ModelLoadError, WorkbenchError
from pipelines.keyed_text import KeyedText
from pipelines.messages import Msg
from pipelines.models.embedded import cached_gguf_dir, is_cached, source_path

if TYPE_CHECKING:
    from pipelines.models.manager import CacheKey, LoadedModel, ModelManager
    from pipelines.models.refs import ModelRef
    from pipelines.training.store import RunInfo

log = logging.getLogger(__name__)
ProgressFn = Callable[[float, str], None]
ENGINE = "llama.cpp"
MAX_CONTEXT = 8192  # tokens of KV cache a llama.cpp model gets at most (its training context when smaller)
GGUF_SUFFIX = ".gguf"
HUB_PREFERENCE = ("q4_k_m", "q4_1", "q4_0", "q5_k_m", "q8_0", "f16")  # the GGUF picked from a hub repo, in order
# general.file_type of a GGUF file -> the precision the stats panel and the Models tab show.
FILE_TYPES = MappingProxyType({
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
})


@dataclass(frozen=True)
class GgufSource:
    """Where a reference's llama.cpp model comes from: the base GGUF file, its tokenizer and (for a run) the run."""

    name: str  # the cache name: an embedded name or the file's resolved path
    path: Path
    tokenizer: Path  # a tokenizer folder, or the GGUF file itself
    run: RunInfo | None = None

    @property
    def adapter(self) -> str | None:
        return self.run.id if self.run else None


def llamacpp_missing() -> str:
    """Why ``llama_cpp`` cannot be used here ("" when it imports)."""
    try:
        importlib.import_module("llama_cpp")
    except Exception as exc:  # noqa: BLE001 - a missing module or a broken native library: both mean "fall back"
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return ""


def is_gguf_path(ref: str) -> bool:
    """Whether ``ref`` names a ``.gguf`` file (it may not exist)."""
    return (ref or "").strip().lower().endswith(GGUF_SUFFIX)


def local_gguf(ref: str, roots: list[Path]) -> Path:
    """A ``.gguf`` file under one of ``roots`` (containment checked before existence, like local folders)."""
    from pipelines.models.refs import contained_path

    resolved = contained_path(ref.strip(), roots)
    if not resolved.is_file():
        raise ModelLoadError("models.error.folder_missing", ref=ref)
    return resolved


def gguf_source(manager: ModelManager, ref: str) -> GgufSource | None:
    """The GGUF model behind ``ref``, or None when it has none (then transformers answers).

    A GGUF file: the embedded SmolLM2, a local ``.gguf`` path under the model folders, a hub repo holding a GGUF
    file (while the Hub is reachable), or a causal-LM run on such a base (its adapter converted to a GGUF LoRA).
    """
    ref = (ref or "").strip()
    if is_gguf_path(ref):
        path = local_gguf(ref, manager.config.model_roots)
        return GgufSource(str(path), path, path)
    resolved = manager.resolve(ref)
    if resolved.run is not None:
        if resolved.run.kind != "causal-lm" or resolved.base is None or not lora_converter_available():
            return None
        base = _base_source(manager, resolved.base)
        if base is None:
            return None
        tokenizer = resolved.run.path / "tokenizer"
        return GgufSource(base.name, base.path, tokenizer if tokenizer.is_dir() else base.tokenizer, resolved.run)
    return _base_source(manager, resolved)


def _base_source(manager: ModelManager, ref: ModelRef) -> GgufSource | None:
    if ref.embedded is not None:
        if ref.embedded.fmt != "gguf" or ref.embedded.default_kind != "causal-lm":
            return None
        from pipelines.models.gguf_repack import repacked

        path = repacked(source_path(ref.embedded), manager.config.cache_dir)  # Q4_1 -> Q8_0 once: faster on CPU
        folder = cached_gguf_dir(ref.embedded, manager.config.cache_dir)
        return GgufSource(ref.name, path, folder if is_cached(ref.embedded, manager.config.cache_dir) else path)
    if ref.source == "hub" and manager.hub.reachable():
        path = hub_gguf(ref.location)
        return GgufSource(str(path), path, path) if path else None
    return None


def hub_gguf(repo: str) -> Path | None:
    """Download (once, into the Hugging Face cache) the preferred GGUF file of a hub repo; None without one."""
    try:
        from huggingface_hub import hf_hub_download, list_repo_files

        files = [f for f in list_repo_files(repo) if f.lower().endswith(GGUF_SUFFIX)]
    except Exception as exc:  # noqa: BLE001 - an unknown or private repo simply has no GGUF for us
        log.info("No GGUF listing for %s: %s", repo, exc)
        return None
    if not files:
        return None
    ranked = sorted(files, key=lambda f: next((i for i, q in enumerate(HUB_PREFERENCE) if q in f.lower()), 99))
    return Path(hf_hub_download(repo, ranked[0]))


def file_type(llm: Any) -> str:
    """The GGUF's quantisation as a short name (``Q4_1``), from its metadata."""
    raw = str(getattr(llm, "metadata", {}).get("general.file_type", ""))
    return FILE_TYPES.get(int(raw), f"GGUF type {raw}") if raw.isdigit() else "GGUF"


def kv_cache_bytes(llm: Any) -> int:
    """Bytes of the f16 KV cache llama.cpp allocates for the model's context (estimated from its metadata)."""
    meta = getattr(llm, "metadata", {})
    arch = meta.get("general.architecture", "llama")

    def num(name: str, default: int) -> int:
        value = str(meta.get(f"{arch}.{name}", default))
        return int(value) if value.isdigit() else default

    heads = max(1, num("attention.head_count", 1))
    head_dim = num("embedding_length", 0) // heads
    return 2 * 2 * num("block_count", 0) * num("attention.head_count_kv", heads) * head_dim * llm.n_ctx()


def build_llama(path: Path, lora: Path | None, threads: int) -> Any:
    """A ``llama_cpp.Llama`` for ``path`` (with a LoRA adapter), its context capped at :data:`MAX_CONTEXT`.

    Only the last position's logits are kept (``logits_all=False``): the token view reads them through the
    low-level API, which costs a softmax per token instead of llama-cpp-python's 5x slower ``logprobs`` path.
    """
    import llama_cpp

    threads = threads or os.cpu_count() or 1

    def build(n_ctx: int) -> Any:
        return llama_cpp.Llama(
            str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, n_batch=512, logits_all=False,
            lora_path=str(lora) if lora else None, verbose=False,
        )

    llm = build(MAX_CONTEXT)
    trained = int(llm._model.n_ctx_train())  # known once loaded: a model trained on less gets no more
    if 0 < trained < MAX_CONTEXT:
        llm.close()
        llm = build(trained)
    return llm


def load_tokenizer(source: GgufSource) -> Any:
    """The Hugging Face tokenizer of ``source`` (a folder, or read from the GGUF file itself)."""
    from transformers import AutoTokenizer

    where = source.tokenizer
    if where.is_dir():
        tokenizer = AutoTokenizer.from_pretrained(str(where))
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(where.parent), gguf_file=where.name)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def lora_converter_available() -> bool:
    """Whether runs' adapters can be converted to GGUF LoRA files here (``pipelines.training.gguf_lora``)."""
    try:
        return importlib.util.find_spec("pipelines.training.gguf_lora") is not None
    except (ImportError, ValueError):
        return False


def lora_for(run: RunInfo | None, base: Path) -> Path | None:
    """The run's adapter as a GGUF LoRA file for ``base`` (converted once into the run folder; see ``gguf_lora``)."""
    if run is None:
        return None
    from pipelines.training.gguf_lora import gguf_lora_for_run

    return Path(gguf_lora_for_run(run.path, base))


def source_ref(manager: ModelManager, source: GgufSource) -> ModelRef:
    """The :class:`ModelRef` of a GGUF source (a plain local ref for a ``.gguf`` file, which refs do not resolve)."""
    from pipelines.models.refs import ModelRef

    if source.run is not None:
        return manager.resolve(source.run.reference)
    if not is_gguf_path(source.name):
        return manager.resolve(source.name)
    return ModelRef(source.name, "local", str(source.path))


def build_loaded(manager: ModelManager, key: CacheKey, source: GgufSource, progress: ProgressFn | None) -> LoadedModel:
    """Build the llama.cpp model and tokenizer of ``source`` as a :class:`LoadedModel` (its dtype: the GGUF's
    quantisation; its size: file, adapter and KV cache)."""
    from pipelines.models.manager import LoadedModel

    started = time.perf_counter()
    report = progress or (lambda _f, _d: None)
    name = source.run.reference if source.run else source.name
    report(0.0, KeyedText(Msg.of("models.progress.loading", name=name, device="cpu")))
    try:
        lora = None
        if source.run is not None:
            report(0.2, KeyedText(Msg.of("models.progress.adapter", run=source.run.id)))
            lora = lora_for(source.run, source.path)
        tokenizer = load_tokenizer(source)
        report(0.5, KeyedText(Msg.of("models.progress.weights", name=name)))
        llm = build_llama(source.path, lora, key.threads)
    except WorkbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear sentence
        log.exception("Loading %s with llama.cpp failed", name)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError("models.error.load_failed", name=name, detail=first[:300]) from None
    report(1.0, KeyedText(Msg.of("models.progress.loaded", name=name)))
    scores = getattr(llm, "scores", None)  # llama-cpp-python's logits buffer (n_batch x vocabulary floats)
    size = (source.path.stat().st_size + (lora.stat().st_size if lora else 0) + kv_cache_bytes(llm)
            + int(getattr(scores, "nbytes", 0)))
    return LoadedModel(replace(key, dtype=file_type(llm)), source_ref(manager, source), llm, tokenizer, size,
                       time.perf_counter() - started)
