"""Models the Fine-tune tab wrote into the models folder: ``<run>-merged`` (a safetensors folder, "Merge") and
``<run>-merged.gguf`` (one llama.cpp file, "Export as GGUF"), listed in the model pickers beside the runs.

With logins a merged model belongs to its run's owner (an admin sees all); a model whose run was deleted is then
listed for no one (it can still be typed as a path by an admin). Without logins every merged model is listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import WorkbenchError

SUFFIX = "-merged"
GGUF = ".gguf"


@dataclass(frozen=True)
class MergedModel:
    name: str  # the file or folder name
    path: Path
    kind: str  # "causal-lm", "seq-cls" or "encoder"
    engine: str  # "llama.cpp" for a GGUF file, else "transformers"


def _kind_of_folder(folder: Path) -> str:
    try:
        architectures = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return ""
    name = str(architectures[0]) if architectures else ""
    if name.endswith("ForCausalLM"):
        return "causal-lm"
    return "seq-cls" if name.endswith("ForSequenceClassification") else "encoder"


def merged_models(models_dir: Path, runs: Any, user: str | None = None) -> list[MergedModel]:
    """The merged models in ``models_dir`` that ``user`` may use (None: no logins, all of them), by name."""
    found = []
    for path in sorted(Path(models_dir).glob(f"*{SUFFIX}*")) if Path(models_dir).is_dir() else []:
        is_gguf = path.is_file() and path.name.endswith(SUFFIX + GGUF)
        if not is_gguf and not (path.is_dir() and path.name.endswith(SUFFIX) and (path / "config.json").is_file()):
            continue  # a temporary file or folder of an export still being written, or something else
        run_id = path.name.removesuffix(GGUF).removesuffix(SUFFIX)
        try:
            runs.find(run_id, user)
        except WorkbenchError:
            if user is not None:
                continue  # another user's run, or a deleted one: not this user's model
        kind = "causal-lm" if is_gguf else _kind_of_folder(path)
        if kind:
            found.append(MergedModel(path.name, path, kind, "llama.cpp" if is_gguf else "transformers"))
    return found
