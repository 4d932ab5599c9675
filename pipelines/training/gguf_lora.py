"""GGUF LoRA adapters for causal-LM runs trained here, so llama.cpp can run them over the base GGUF model.

:func:`gguf_lora_for_run` converts a finished run's PEFT adapter (``adapter/adapter_model.safetensors`` and
``adapter/adapter_config.json``) into the file llama.cpp's ``convert_lora_to_gguf.py`` writes, with the ``gguf``
library's writer and tensor-name map:

* metadata ``general.architecture`` (the base GGUF's), ``general.type = "adapter"``, ``adapter.type = "lora"``,
  ``adapter.lora.alpha`` (llama.cpp scales every pair by alpha / rank, as PEFT does);
* tensors ``<gguf name>.lora_a`` of shape (rank, in) and ``<gguf name>.lora_b`` of shape (out, rank) in float32
  (ggml reads them as ne = [in, rank] and [rank, out], which llama.cpp checks against the base weight);
* for the ``llama`` architecture the rows of the query and key weights are permuted in the GGUF (rotary halves
  interleaved, ``LlamaModel.permute`` in ``convert_hf_to_gguf.py``), so ``lora_b`` of ``q_proj``/``k_proj`` gets the
  same row permutation (``lora_a`` acts on the input side, which is not permuted);
* per-module ranks or alphas (``rank_pattern``/``alpha_pattern``) and rsLoRA scaling are folded into ``lora_b`` so
  that llama.cpp's one alpha / rank gives PEFT's scale for every module.

The file is written once into the run folder (``adapter.lora.gguf``) and re-used while it is newer than the
adapter. DoRA, embedding adapters and fully trained modules (``modules_to_save``) have no llama.cpp LoRA form:
they are refused with a keyed error.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import InputError, ModelLoadError

if TYPE_CHECKING:
    import numpy as np

GGUF_LORA_NAME = "adapter.lora.gguf"
WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"
PERMUTED_ARCHS = frozenset({"llama"})  # architectures whose q/k rows convert_hf_to_gguf.py permutes
UNPERMUTED_ARCHS = frozenset({"qwen2", "qwen3"})  # NEOX rope in llama.cpp: converted without a q/k permutation
LORA_SUFFIX = re.compile(r"\.lora_([AB])\.weight$")


def gguf_lora_for_run(run_dir: Path, base_gguf: Path) -> Path:
    """The GGUF LoRA file of the causal-LM run in ``run_dir`` for ``base_gguf``, converted once and cached."""
    run_dir, base_gguf = Path(run_dir), Path(base_gguf)
    check_run(run_dir)
    adapter = run_dir / "adapter"
    weights, config = adapter / WEIGHTS_NAME, adapter / CONFIG_NAME
    if not weights.is_file() or not config.is_file():
        raise ModelLoadError("gguf_lora.no_adapter", run=run_dir.name)
    out = run_dir / GGUF_LORA_NAME
    newest = max(weights.stat().st_mtime, config.stat().st_mtime)
    if out.is_file() and out.stat().st_mtime >= newest:
        return out
    base = read_base(base_gguf)
    lora_config = json.loads(config.read_text(encoding="utf-8"))
    tensors = convert_tensors(load_weights(weights), lora_config, base)
    write_gguf_lora(out, base["arch"], float(lora_config.get("lora_alpha", lora_config.get("r", 8))), tensors)
    return out


def check_run(run_dir: Path) -> None:
    """A keyed error unless ``run_dir`` holds a finished causal-LM run."""
    from pipelines.training.enums import USABLE
    from pipelines.training.store import read_info

    info = read_info(run_dir)
    if info is None:
        raise ModelLoadError("gguf_lora.no_adapter", run=run_dir.name)
    if info.kind != "causal-lm":
        raise InputError("gguf_lora.not_causal", run=run_dir.name, task=info.task)
    if info.status not in USABLE:
        raise InputError("gguf_lora.not_finished", run=run_dir.name, status=str(info.status))


def read_base(base_gguf: Path) -> dict[str, Any]:
    """Architecture, block count, head counts and tensor names of the base GGUF model."""
    import gguf

    if not base_gguf.is_file():
        raise ModelLoadError("gguf_lora.no_base", path=str(base_gguf))
    reader = gguf.GGUFReader(str(base_gguf))

    def field(key: str, default: Any = None) -> Any:
        found = reader.fields.get(key)
        return found.contents() if found is not None else default

    arch = str(field("general.architecture", ""))
    heads = int(field(f"{arch}.attention.head_count", 0) or 0)
    return {"arch": arch, "blocks": int(field(f"{arch}.block_count", 0) or 0), "heads": heads,
            "heads_kv": int(field(f"{arch}.attention.head_count_kv", heads) or heads),
            "tensors": frozenset(t.name for t in reader.tensors)}


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """The adapter's safetensors weights as float32 numpy arrays."""
    from safetensors.torch import load_file

    return {name: tensor.float().numpy() for name, tensor in load_file(str(path), device="cpu").items()}


def convert_tensors(weights: dict[str, np.ndarray], config: dict[str, Any],
                    base: dict[str, Any]) -> dict[str, np.ndarray]:
    """GGUF-named ``.lora_a``/``.lora_b`` float32 arrays for every adapted weight of the PEFT ``weights``."""
    import gguf
    import numpy as np

    _check_config(config)
    arch = base["arch"]
    if arch not in PERMUTED_ARCHS | UNPERMUTED_ARCHS:
        raise ModelLoadError("gguf_lora.unsupported_arch", arch=arch or "?")
    names = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    tensor_map = gguf.get_tensor_name_map(names[arch], base["blocks"])
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for name, array in weights.items():
        found = LORA_SUFFIX.search(name)
        if found is None:
            raise ModelLoadError("gguf_lora.unsupported_tensor", name=name)
        module = name[:found.start()].removeprefix("base_model.model.")
        pairs.setdefault(module, {})[found.group(1)] = array
    alpha = float(config.get("lora_alpha", config.get("r", 8)))
    out: dict[str, np.ndarray] = {}
    for module, pair in sorted(pairs.items()):
        if set(pair) != {"A", "B"}:
            raise ModelLoadError("gguf_lora.unsupported_tensor", name=module)
        target = tensor_map.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None or target not in base["tensors"]:
            raise ModelLoadError("gguf_lora.unsupported_tensor", name=module)
        lora_a, lora_b = pair["A"], pair["B"]
        rank = lora_a.shape[0]
        lora_b = lora_b * (module_scale(module, config) * rank / alpha)  # llama.cpp applies alpha / rank
        if arch in PERMUTED_ARCHS and module.endswith(("q_proj", "k_proj")):
            lora_b = permute_rows(lora_b, base["heads"], base["heads_kv"] if module.endswith("k_proj") else None)
        out[target + ".lora_a"] = np.ascontiguousarray(lora_a, dtype=np.float32)
        out[target + ".lora_b"] = np.ascontiguousarray(lora_b, dtype=np.float32)
    if not out:
        raise ModelLoadError("gguf_lora.empty")
    return out


def _check_config(config: dict[str, Any]) -> None:
    if str(config.get("peft_type", "LORA")).upper() != "LORA" or config.get("use_dora"):
        raise ModelLoadError("gguf_lora.unsupported_peft", kind="DoRA" if config.get("use_dora") else
                             str(config.get("peft_type")))
    if config.get("modules_to_save"):
        raise ModelLoadError("gguf_lora.unsupported_peft", kind="modules_to_save")


def _pattern(module: str, patterns: dict[str, Any] | None, default: float) -> float:
    """PEFT's per-module override: a pattern key matching the end of the module name."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?{key}$", module):
            return float(value)
    return default


def module_scale(module: str, config: dict[str, Any]) -> float:
    """The scale PEFT applies to ``B @ A`` of ``module``: alpha / rank, or alpha / sqrt(rank) with rsLoRA."""
    rank = _pattern(module, config.get("rank_pattern"), float(config.get("r", 8)))
    alpha = _pattern(module, config.get("alpha_pattern"), float(config.get("lora_alpha", rank)))
    return alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)


def permute_rows(weight: np.ndarray, heads: int, heads_kv: int | None) -> np.ndarray:
    """``LlamaModel.permute`` of convert_hf_to_gguf.py on the rows of ``weight`` (out, ...)."""
    if heads_kv is not None and heads_kv != heads:
        heads = heads_kv
    shape = weight.shape
    return weight.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def write_gguf_lora(path: Path, arch: str, alpha: float, tensors: dict[str, np.ndarray]) -> None:
    """Write the adapter file (through a temporary file, so a reader never sees half of it)."""
    import gguf

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for name, array in tensors.items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(tmp, path)
