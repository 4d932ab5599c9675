"""The one model manager: lazy loading, an LRU cache under a memory budget, explicit unload.

Nothing here imports torch or transformers at module level: they are imported when a model is built.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import AppConfig
from pipelines.errors import ModelLoadError, WorkbenchError
from pipelines.keyed_text import KeyedText
from pipelines.messages import Msg
from pipelines.models import refs
from pipelines.models.devices import detect_device, is_auto, resolve_dtype, torch_dtype
from pipelines.models.embedded import ensure_local_folder
from pipelines.models.hub import HubCheck
from pipelines.models.kinds import ModelKind, Precision
from pipelines.models.loading import (
    auto_class_name,
    dynamic_int8,
    free_memory,
    friendly_error,
    model_nbytes,
)
from pipelines.models.refs import ModelRef

if TYPE_CHECKING:
    from pipelines.models.llamacpp import GgufSource

__all__ = ["CacheKey", "LoadedModel", "ModelManager", "dynamic_int8", "model_nbytes"]

log = logging.getLogger(__name__)
ProgressFn = Callable[[float, str], None]
GateFn = Callable[[ProgressFn | None], None]


@dataclass(frozen=True)
class CacheKey:
    """What makes two loads the same: model, adapter, device, dtype, head kind, attention kernel.

    ``model`` is the canonical name: an embedded name, a hub id, or a local folder's resolved path (so a folder
    typed two ways -- trailing slash, relative, through a symlink -- is one entry).
    """

    model: str
    adapter: str | None
    device: str
    dtype: str
    kind: str
    attn: str | None = None
    engine: str = "transformers"  # or "llama.cpp" (a GGUF model; ``dtype`` is then its quantisation, e.g. Q4_1)
    threads: int = 0  # llama.cpp models: the threads they were built with

    def same_model(self, other: CacheKey) -> bool:
        """Whether ``other`` is the same model, adapter, device, head, kernel and engine (any dtype)."""
        return (self.model, self.adapter, self.device, self.kind, self.attn, self.engine, self.threads) == (
            other.model, other.adapter, other.device, other.kind, other.attn, other.engine, other.threads)


@dataclass
class LoadedModel:
    """A model in memory with its tokenizer (``model`` is a spaCy Language for spaCy refs)."""

    key: CacheKey
    ref: ModelRef
    model: Any
    tokenizer: Any
    nbytes: int
    load_seconds: float
    last_used: float = field(default_factory=time.monotonic)

    @property
    def device(self) -> str:
        return self.key.device

    @property
    def kind(self) -> str:
        return self.key.kind

    def describe(self) -> dict:
        return {
            "model": self.key.model,
            "adapter": self.key.adapter,
            "kind": str(self.key.kind),
            "device": self.key.device,
            "dtype": str(self.key.dtype),
            "attention": self.key.attn or "default",
            "engine": self.key.engine,
            "size_mb": round(self.nbytes / 2**20, 1),
            "load_seconds": round(self.load_seconds, 2),
        }


def canonical_name(ref: ModelRef) -> str:
    """The name a model is cached under: a local folder's resolved path, else the embedded name or hub id."""
    base = ref.base or ref
    return str(base.location) if base.source == "local" else base.name


class ModelManager:
    """Loads models on first use and keeps them in an LRU cache bounded by a memory budget."""

    def __init__(self, config: AppConfig, hub: HubCheck | None = None) -> None:
        self.config = config
        self.hub = hub or HubCheck()
        self.gate: GateFn | None = None  # called before building an embedded model (the warm-up's wait)
        self._cache: OrderedDict[CacheKey, LoadedModel] = OrderedDict()
        self._lock = threading.RLock()
        self._key_locks: dict[CacheKey, threading.Lock] = {}
        self.load_count = 0  # loads that actually built a model (not served from memory)
        self.version = 0  # bumped whenever the set of loaded models changes

    # ---- public API -------------------------------------------------
    @property
    def device(self) -> str:
        return detect_device(self.config.device)

    def resolve(self, ref: str) -> ModelRef:
        return refs.resolve(ref, self.config)

    def default_kind(self, ref: ModelRef) -> str:
        if ref.run is not None:
            return ref.run.kind
        if ref.embedded is not None:
            return ref.embedded.default_kind
        if ref.source == "local":
            return refs.kind_from_config(Path(ref.location)) or ModelKind.ENCODER
        return self._hub_kind(ref)

    def load(
        self,
        ref: str,
        kind: str | None = None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        attn_implementation: str | None = None,
        progress: ProgressFn | None = None,
    ) -> LoadedModel:
        """Return the loaded model for ``ref``, loading it only if it is not in memory.

        With ``dtype`` ``auto`` (or None) a copy already in memory for the same model, device and head is reused
        whatever its precision (e.g. the one the Generate tab's auto precision chose).
        """
        resolved = self.resolve(ref)
        kind = ModelKind.SPACY if resolved.is_spacy else (kind or self.default_kind(resolved))
        if kind != ModelKind.SPACY and auto_class_name(kind) is None:
            raise ModelLoadError("models.error.unknown_kind", kind=str(kind))
        kind = ModelKind(kind)
        dev = detect_device(device or self.config.device)
        adapter = resolved.run.id if resolved.run else None
        wanted = CacheKey(canonical_name(resolved), adapter, dev, Precision.NONE, kind, attn_implementation)
        if resolved.is_spacy or is_auto(dtype):
            hit = self._reuse(wanted)
            if hit is not None:
                return hit
        dt = Precision.NONE if resolved.is_spacy else resolve_dtype(dtype, dev)
        if dt == Precision.INT8 and dev != "cpu":
            raise ModelLoadError("models.error.int8_cpu_only")
        key = CacheKey(wanted.model, adapter, dev, dt, kind, attn_implementation)

        def build() -> LoadedModel:
            if self.gate is not None and (resolved.base or resolved).embedded is not None:
                self.gate(progress)
            return self._build(key, resolved, progress)

        return self._cached(key, build)

    def load_llamacpp(self, source: GgufSource, threads: int = 0, progress: ProgressFn | None = None) -> LoadedModel:
        """The llama.cpp model of ``source`` (a GGUF file, with a run's LoRA), built once per (file, adapter,
        threads) and kept in the same LRU cache and memory budget as every other model."""
        from pipelines.models.llamacpp import ENGINE, build_loaded

        key = CacheKey(source.name, source.adapter, "cpu", Precision.NONE, ModelKind.CAUSAL_LM, None, ENGINE,
                       max(0, int(threads or 0)))
        # The key's dtype becomes the file's quantisation once built: found again by ``same_model``.
        return self._cached(key, lambda: build_loaded(self, key, source, progress), lambda: self._reuse(key))

    def _cached(self, key: CacheKey, build: Callable[[], LoadedModel],
                find: Callable[[], LoadedModel | None] | None = None) -> LoadedModel:
        """The cache entry ``key`` (or what ``find`` finds), built once, whoever asks at the same time."""
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            if find is not None:
                hit = find()
                if hit is not None:
                    return hit
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    return self._touch(hit)
            loaded = build()
            with self._lock:
                self._cache[loaded.key] = loaded
                self.load_count += 1
                self.version += 1
                self._evict(keep=loaded.key)
            return loaded

    def loaded(self) -> list[dict]:
        """Descriptions of the models in memory, least recently used first."""
        with self._lock:
            return [m.describe() for m in self._cache.values()]

    def is_loaded(self, key: CacheKey) -> bool:
        with self._lock:
            return key in self._cache

    def unload(self, ref: str | None = None) -> int:
        """Drop models whose base model or adapter reference matches ``ref`` (all if None).

        A local folder matches however it is typed (it is compared by its resolved path).
        """
        if ref is None:
            return self._drop(lambda _k: True)
        names = {ref.strip()}
        with contextlib.suppress(WorkbenchError):  # not resolvable now (a deleted folder): match the text as typed
            names.add(canonical_name(self.resolve(ref)))
        with contextlib.suppress(OSError, RuntimeError, ValueError):  # a .gguf file (llama.cpp) by its real path
            names.add(str(Path(ref.strip()).expanduser().resolve()))
        return self._drop(lambda k: k.model in names or (k.adapter is not None and f"run:{k.adapter}" in names))

    def discard(self, key: CacheKey) -> bool:
        """Drop the one cache entry ``key`` (e.g. a precision that lost a measurement); True if it was there."""
        return self._drop(lambda k: k == key) > 0

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(m.nbytes for m in self._cache.values())

    # ---- internals --------------------------------------------------
    def _touch(self, hit: LoadedModel) -> LoadedModel:
        self._cache.move_to_end(hit.key)
        hit.last_used = time.monotonic()
        return hit

    def _reuse(self, wanted: CacheKey) -> LoadedModel | None:
        """The most recently used copy of ``wanted``'s model in any precision, if one is in memory."""
        with self._lock:
            for key in reversed(self._cache):
                if key.same_model(wanted):
                    return self._touch(self._cache[key])
        return None

    def _drop(self, match: Callable[[CacheKey], bool]) -> int:
        """Remove the cache entries ``match`` selects, free their memory, and return how many there were."""
        with self._lock:
            victims = [k for k in self._cache if match(k)]
            for k in victims:
                del self._cache[k]
            if victims:
                self.version += 1
        if victims:
            free_memory()
        return len(victims)

    def _evict(self, keep: CacheKey) -> None:
        budget = self.config.memory_budget_mb * 2**20
        evicted = False
        while sum(m.nbytes for m in self._cache.values()) > budget and len(self._cache) > 1:
            oldest = next(k for k in self._cache if k != keep)
            log.info("Evicting %s to stay under the %d MB budget", oldest, self.config.memory_budget_mb)
            del self._cache[oldest]
            evicted = True
        if evicted:
            free_memory()

    def _hub_kind(self, ref: ModelRef) -> str:
        from transformers import AutoConfig

        try:
            cfg = AutoConfig.from_pretrained(
                ref.location, trust_remote_code=self.config.trust_remote_code, **self.hub.options(ref)
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear sentence
            raise friendly_error(ref, exc) from None
        for arch in cfg.architectures or []:
            for suffix, kind in refs.ARCH_KINDS:
                if arch.endswith(suffix):
                    return kind
        return ModelKind.SEQ2SEQ if getattr(cfg, "is_encoder_decoder", False) else ModelKind.ENCODER

    def _build(self, key: CacheKey, ref: ModelRef, progress: ProgressFn | None) -> LoadedModel:
        started = time.perf_counter()
        report = progress or (lambda _f, _d: None)
        report(0.0, KeyedText(Msg.of("models.progress.loading", name=ref.name, device=key.device)))
        try:
            if ref.is_spacy:
                import spacy

                from pipelines.models.embedded import source_path

                model, tokenizer = spacy.load(source_path(ref.embedded)), None
            else:
                model, tokenizer = self._build_transformers(key, ref, report)
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear sentence
            log.exception("Loading %s failed", ref.name)
            raise friendly_error(ref, exc) from None
        report(1.0, KeyedText(Msg.of("models.progress.loaded", name=ref.name)))
        return LoadedModel(key, ref, model, tokenizer, model_nbytes(model), time.perf_counter() - started)

    def _location(self, ref: ModelRef, report: ProgressFn) -> str:
        if ref.embedded is not None:
            return str(ensure_local_folder(ref.embedded, self.config.cache_dir, report))
        return ref.location

    def _build_transformers(self, key: CacheKey, ref: ModelRef, report: ProgressFn) -> tuple[Any, Any]:
        import transformers

        base = ref.base or ref
        location = self._location(base, report)
        run_tokenizer = ref.run.path / "tokenizer" if ref.run else None
        tokenizer_source = str(run_tokenizer) if run_tokenizer and run_tokenizer.is_dir() else location
        offline = self.hub.options(base)
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            tokenizer_source,
            trust_remote_code=self.config.trust_remote_code,
            **(offline if tokenizer_source == location else {}),
        )
        kwargs: dict[str, Any] = {
            **offline,
            "trust_remote_code": self.config.trust_remote_code,
            "use_safetensors": None if self.config.allow_pickle_weights else True,
            "dtype": torch_dtype(key.dtype),
        }
        if key.attn:
            kwargs["attn_implementation"] = key.attn
        if ref.run is not None and key.kind == ModelKind.SEQ_CLS and ref.run.labels:
            labels = ref.run.labels
            kwargs.update(
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)},
                ignore_mismatched_sizes=True,  # the base may have its own head; the adapter brings the trained one
            )
        report(0.3, KeyedText(Msg.of("models.progress.weights", name=base.name)))
        auto = getattr(transformers, auto_class_name(key.kind) or "AutoModel")
        model = auto.from_pretrained(location, **kwargs)
        if ref.run is not None:
            from peft import PeftModel

            report(0.7, KeyedText(Msg.of("models.progress.adapter", run=ref.run.id)))
            model = PeftModel.from_pretrained(model, str(ref.run.adapter_dir))
        model.eval()
        if key.dtype == Precision.INT8:
            model = dynamic_int8(model)
        else:
            model.to(key.device)
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer
