"""A Q4_1 GGUF model re-encoded as Q8_0 once, into the cache, for llama.cpp on a CPU.

llama.cpp's fast prompt kernels on x86 (tinyBLAS) and its faster dot products take Q8_0 and Q4_0 but not Q4_1, the
embedded SmolLM2's format. Every Q4_1 block (32 weights, ``d * q + m`` with 16 levels) fits Q8_0's 255 levels to
within 1/17 of its own step, so the re-encoded file keeps the model's weights (the first 64 greedy tokens were
identical on the bench prompt) while evaluating a 100-token prompt about 1.8x faster (0.18 s against 0.33 s, one
decoding thread, two for the prompt) and decoding about 1.25x faster (90 against 72 tok/s) on this 2-core CPU.
The re-encoding takes ~2 s and ~140 MB of cache; ``LMW_GGUF_REPACK=0`` loads the file as it is.

It reuses the merged-model writer (:func:`pipelines.training.gguf_merged.write_merged`), naming every Q4_1 tensor
with no change: metadata copied whole, other tensors byte for byte, the file renamed into place when complete.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

FOLDER = "gguf-q8_0"  # under the cache dir


def enabled() -> bool:
    return os.environ.get("LMW_GGUF_REPACK", "1").strip() != "0"


def repacked(source: Path, cache_dir: Path) -> Path:
    """``source`` re-encoded as Q8_0 in the cache (made once), or ``source`` itself when it holds no Q4_1 tensor,
    when repacking is off, or when writing fails (the original still works)."""
    if not enabled():
        return source
    target = Path(cache_dir) / FOLDER / f"{source.stem}.Q8_0.gguf"
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    import gguf

    from pipelines.training.gguf_merged import write_merged

    reader = gguf.GGUFReader(str(source))
    changes = {t.name: None for t in reader.tensors if t.tensor_type == gguf.GGMLQuantizationType.Q4_1}  # unchanged
    if not changes:
        return source
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    name = reader.fields.get(gguf.Keys.General.NAME)
    try:
        write_merged(reader, tmp, changes, gguf.GGMLQuantizationType.Q8_0,
                     str(name.contents()) if name is not None else source.stem, lambda *_: None)
        os.replace(tmp, target)
    except OSError:
        return source
    finally:
        tmp.unlink(missing_ok=True)
    return target
