"""A causal-LM run merged into one GGUF model file, so llama.cpp runs the fine-tuned model without an adapter.

:func:`export_merged_gguf` reads the run's base GGUF model with ``gguf.GGUFReader`` and writes a copy with the
``gguf`` library's writer:

* every key/value of the base (architecture, hyper-parameters, tokenizer vocabulary, merges and token types, chat
  template) is copied; ``general.name`` becomes the run's name, ``general.type`` stays ``model`` and
  ``general.file_type`` names the weight type that holds most parameters afterwards (the base's when unchanged);
* every weight the adapter touches is de-quantised (``gguf.quants.dequantize``), gets ``scale * B @ A`` added
  (the GGUF-named, scaled and, for ``llama``, q/k row-permuted pairs of
  :func:`pipelines.training.gguf_lora.convert_tensors`) and is written as F16 (default) or Q8_0;
* every other tensor is copied byte for byte, in its own quantisation.

F16 is the default: on the embedded SmolLM2 with a rank-8 adapter, llama.cpp's log-probability of the merged
model's top token was 0.012 (q/k/v/o adapted) and 0.007 (all linear layers) from transformers' on average with
F16, against 0.018 and 0.046 (at most 0.12) with Q8_0, whose files are 18-41% smaller. The file is written under a
temporary name and renamed, so a model picker never sees half of it, and is re-used while it is newer than the
adapter.

A run whose base is not a GGUF model (a hub id, a transformers folder) is refused with a keyed error: llama.cpp's
``convert_hf_to_gguf.py`` is not a pip package, and no well-kept PyPI converter works offline.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import InputError, ModelLoadError
from pipelines.keyed_text import KeyedText
from pipelines.messages import Msg
from pipelines.training import gguf_lora

if TYPE_CHECKING:
    import numpy as np

    from pipelines.config import AppConfig
    from pipelines.training.store import RunInfo

ProgressFn = Callable[[float, str], None]
MERGED_SUFFIX = "-merged.gguf"
WEIGHT_TYPES = ("F16", "Q8_0")  # what an adapted weight is written as; the first is the default
SKIPPED_KEYS = frozenset({"general.architecture", "general.name", "general.type", "general.file_type"})


@dataclass(frozen=True)
class MergedGguf:
    """What an export wrote (or found already written)."""

    path: Path
    weight_type: str  # F16 or Q8_0: the type of the adapted weights
    adapted: int  # tensors that got the adapter's delta
    size: int  # bytes
    seconds: float
    reused: bool = False

    @property
    def msg(self) -> Msg:
        """The status line for the UI."""
        key = "gguf_merged.reused" if self.reused else "gguf_merged.done"
        return Msg.of(key, path=str(self.path), size=f"{self.size / 2**20:.1f}", tensors=self.adapted,
                      type=self.weight_type, seconds=f"{self.seconds:.1f}")


def merged_gguf_path(models_dir: Path, run_id: str) -> Path:
    """Where the merged GGUF of ``run_id`` goes: ``<models_dir>/<run>-merged.gguf``."""
    return Path(models_dir) / f"{run_id}{MERGED_SUFFIX}"


def base_gguf_for(base_model: str, config: AppConfig) -> Path:
    """The GGUF file of a run's base model (the embedded SmolLM2, or a ``.gguf`` file under the model folders)."""
    from pipelines.models.embedded import EMBEDDED, source_path
    from pipelines.models.llamacpp import is_gguf_path, local_gguf

    spec = EMBEDDED.get(base_model)
    if spec is not None and spec.fmt == "gguf":
        return source_path(spec)
    if is_gguf_path(base_model):
        return local_gguf(base_model, config.model_roots)
    raise InputError("gguf_merged.base_not_gguf", base=base_model[:200])


def export_run(run: RunInfo, config: AppConfig, progress: ProgressFn | None = None,
               weight_type: str = WEIGHT_TYPES[0]) -> MergedGguf:
    """Export the (usable, causal-LM) ``run`` as ``<models_dir>/<run>-merged.gguf``."""
    gguf_lora.check_run(run.path)
    base = base_gguf_for(run.base_model, config)
    return export_merged_gguf(run.path, base, merged_gguf_path(config.models_dir, run.id),
                              weight_type, run.name or run.id, progress)


def export_merged_gguf(run_dir: Path, base_gguf: Path, out: Path, weight_type: str = WEIGHT_TYPES[0],
                       name: str = "", progress: ProgressFn | None = None) -> MergedGguf:
    """Write ``base_gguf`` with the adapter of ``run_dir`` merged in to ``out`` (kept while newer than the adapter)."""
    import gguf

    started = time.perf_counter()
    report = progress or (lambda _f, _d: None)
    if weight_type not in WEIGHT_TYPES:
        raise InputError("gguf_merged.bad_type", type=str(weight_type)[:20], types=", ".join(WEIGHT_TYPES))
    adapter = Path(run_dir) / "adapter"
    weights, config_file = adapter / gguf_lora.WEIGHTS_NAME, adapter / gguf_lora.CONFIG_NAME
    if not weights.is_file() or not config_file.is_file():
        raise ModelLoadError("gguf_lora.no_adapter", run=Path(run_dir).name)
    sources = (weights, config_file, Path(base_gguf))
    if out.is_file() and out.stat().st_mtime >= max(f.stat().st_mtime for f in sources if f.is_file()):
        return MergedGguf(out, weight_type, 0, out.stat().st_size, time.perf_counter() - started, reused=True)
    report(0.02, KeyedText(Msg.of("gguf_merged.progress.reading", run=Path(run_dir).name)))
    deltas = adapter_deltas(weights, config_file, base_gguf)
    reader = gguf.GGUFReader(str(base_gguf))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # one per export, even in threads
    try:
        write_merged(reader, tmp, deltas, gguf.GGMLQuantizationType[weight_type], name, report)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    report(1.0, KeyedText(Msg.of("gguf_merged.progress.done")))
    return MergedGguf(out, weight_type, len(deltas), out.stat().st_size, time.perf_counter() - started)


def adapter_deltas(weights: Path, config_file: Path, base_gguf: Path) -> dict[str, np.ndarray]:
    """``{gguf weight name: scale * B @ A}`` in the GGUF's row order, float32, for every adapted weight."""
    import numpy as np

    config = json.loads(config_file.read_text(encoding="utf-8"))
    pairs = gguf_lora.convert_tensors(gguf_lora.load_weights(weights), config, gguf_lora.read_base(base_gguf))
    alpha = float(config.get("lora_alpha", config.get("r", 8)))  # convert_tensors folded scale * rank / alpha into B
    deltas: dict[str, np.ndarray] = {}
    for key, lora_a in pairs.items():
        if key.endswith(".lora_a"):
            target = key.removesuffix(".lora_a")
            lora_b = pairs[target + ".lora_b"]
            delta = (lora_b.astype(np.float64) @ lora_a.astype(np.float64)) * (alpha / lora_a.shape[0])
            deltas[target] = delta.astype(np.float32)
    return deltas


def write_merged(reader: Any, path: Path, deltas: Mapping[str, np.ndarray | None], weight_type: Any, name: str,
                 report: ProgressFn) -> None:
    """Copy ``reader``'s metadata and tensors to ``path``, the tensors in ``deltas`` merged and re-quantised (a
    None delta: re-quantised unchanged, as :mod:`pipelines.models.gguf_repack` does with every Q4_1 tensor)."""
    import gguf
    import numpy as np

    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(str(path), arch, endianess=reader.endianess)
    alignment = reader.fields.get(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = int(alignment.contents())
    for field in reader.fields.values():
        if field.name in SKIPPED_KEYS or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        writer.add_key_value(field.name, field.contents(), kind,
                             sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    old_name = reader.fields.get(gguf.Keys.General.NAME)
    writer.add_name(name or (str(old_name.contents()) if old_name is not None else arch))
    writer.add_type(gguf.GGUFType.MODEL)
    plan = {t.name: _target_type(t, weight_type) for t in reader.tensors if t.name in deltas}
    missing = sorted(set(deltas) - set(plan))
    if missing:
        raise ModelLoadError("gguf_lora.unsupported_tensor", name=missing[0])
    writer.add_file_type(_file_type(reader, plan))
    for tensor in reader.tensors:
        if tensor.name in plan:
            shape = _elements(tensor)
            kind = plan[tensor.name]
            byte_shape = gguf.quants.quant_shape_to_byte_shape(shape, kind)
            writer.add_tensor_info(tensor.name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), kind)
        else:
            writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes,
                                   tensor.tensor_type)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        _write_tensors(reader, writer, deltas, plan, report)
    finally:
        writer.close()


def _write_tensors(reader: Any, writer: Any, deltas: Mapping[str, np.ndarray | None], plan: dict[str, Any],
                   report: ProgressFn) -> None:
    """The tensor data, in the reader's order: planned ones merged and re-quantised, the others copied."""
    import gguf
    import numpy as np

    done, total = 0, max(len(plan), 1)
    for tensor in reader.tensors:
        if tensor.name not in plan:
            writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
            continue
        merged = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(_elements(tensor))
        delta = deltas[tensor.name]
        if delta is not None:
            merged = merged + delta
        writer.write_tensor_data(np.ascontiguousarray(gguf.quants.quantize(merged, plan[tensor.name])))
        done += 1
        report(0.05 + 0.9 * done / total, KeyedText(Msg.of("gguf_merged.progress.tensor", done=done, total=total)))


def _elements(tensor: Any) -> tuple[int, ...]:
    """A reader tensor's shape in elements, numpy order (rows first)."""
    import gguf
    import numpy as np

    shape = tuple(int(n) for n in tensor.data.shape)
    if tensor.data.dtype != np.uint8:
        return shape
    return gguf.quants.quant_shape_from_byte_shape(shape, tensor.tensor_type)


def _target_type(tensor: Any, weight_type: Any) -> Any:
    """The type an adapted weight is written as: ``weight_type``; F32 stays F32; Q8_0 needs rows of 32s."""
    import gguf

    types = gguf.GGMLQuantizationType
    if tensor.tensor_type == types.F32:
        return types.F32
    if weight_type != types.F16 and _elements(tensor)[-1] % gguf.GGML_QUANT_SIZES[weight_type][0]:
        return types.F16
    return weight_type


def _file_type(reader: Any, plan: dict[str, Any]) -> int:
    """``general.file_type``: the base's while the weight type holding most parameters is unchanged, else that
    type's ``MOSTLY_`` value."""
    import gguf

    before: Counter = Counter()
    after: Counter = Counter()
    for tensor in reader.tensors:
        if len(tensor.shape) < 2:
            continue
        count = int(tensor.n_elements)
        before[tensor.tensor_type] += count
        after[plan.get(tensor.name, tensor.tensor_type)] += count
    field = reader.fields.get(gguf.Keys.General.FILE_TYPE)
    base = int(field.contents()) if field is not None else None
    top_before = before.most_common(1)[0][0] if before else None
    top_after = after.most_common(1)[0][0] if after else None
    if base is not None and top_before == top_after:
        return base
    if top_after is None or top_after == gguf.GGMLQuantizationType.F32:
        return int(gguf.LlamaFileType.ALL_F32)
    try:
        return int(gguf.LlamaFileType[f"MOSTLY_{top_after.name}"])
    except KeyError:
        return base if base is not None else int(gguf.LlamaFileType.GUESSED)
