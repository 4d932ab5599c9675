"""Helpers for building models: sizes, int8 quantisation, and one keyed error for every loading failure.

torch is imported inside the functions so that importing the model manager does not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from pipelines.models.refs import ModelRef

AUTO_CLASSES = (
    ("causal-lm", "AutoModelForCausalLM"),
    ("encoder", "AutoModel"),
    ("seq-cls", "AutoModelForSequenceClassification"),
    ("token-cls", "AutoModelForTokenClassification"),
    ("qa", "AutoModelForQuestionAnswering"),
    ("seq2seq", "AutoModelForSeq2SeqLM"),
)


def auto_class_name(kind: str) -> str | None:
    """The transformers Auto class that loads ``kind`` (None for an unknown kind)."""
    return dict(AUTO_CLASSES).get(str(kind))


def dynamic_int8(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with int8 dynamic quantisation of its Linear layers (CPU), in place.

    Per-channel weight scales run as fast as per-tensor ones and change fewer results (measured: a MiniLM
    classifier agreed with float32 on 99.35% of 2,000 rows against 98.90%; SmolLM2's held-out perplexity rose by
    213% against 260%).
    """
    import torch

    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear: qconfig}, inplace=True)


def model_nbytes(model: Any) -> int:
    """Bytes held by a torch model's parameters and buffers (0 for non-torch objects)."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return 0
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def free_memory() -> None:
    """Collect garbage and give cached GPU memory back."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def friendly_error(ref: ModelRef, exc: BaseException) -> ModelLoadError:
    """One keyed sentence for a failure while loading ``ref``."""
    import torch

    text = str(exc)
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in text.lower():
        return ModelLoadError("models.error.out_of_memory", name=ref.name)
    if ref.source == "hub":
        lowered = text.lower()
        if "safetensors" in lowered and ("pickle" in lowered or ".bin" in lowered or "no file" in lowered):
            return ModelLoadError("models.error.hub_pickle_only", name=ref.name)
        return ModelLoadError("models.error.hub_unavailable", name=ref.name)
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ModelLoadError("models.error.load_failed", name=ref.name, detail=first_line[:300])
