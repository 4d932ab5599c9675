"""Resolve a model reference: an embedded short name, ``run:<id>``, a local folder or a hub id."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import AppConfig
from pipelines.errors import ModelLoadError
from pipelines.models.embedded import EMBEDDED, EmbeddedModel
from pipelines.runs import RunInfo, RunStore

HUB_ID = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")
MAX_REF_CHARS = 300

# Architecture suffix -> model kind used by the manager.
ARCH_KINDS = (
    ("ForCausalLM", "causal-lm"),
    ("LMHeadModel", "causal-lm"),
    ("ForConditionalGeneration", "seq2seq"),
    ("ForSequenceClassification", "seq-cls"),
    ("ForTokenClassification", "token-cls"),
    ("ForQuestionAnswering", "qa"),
)


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from; ``location`` is a folder path or a hub id."""

    name: str
    source: str  # embedded, hub, local, run
    location: str = ""
    embedded: EmbeddedModel | None = None
    run: RunInfo | None = None
    base: ModelRef | None = None  # for runs: the base model

    @property
    def is_spacy(self) -> bool:
        return self.embedded is not None and self.embedded.fmt == "spacy"


def _is_path_like(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or "\\" in ref or Path(ref).is_absolute()


def check_local_folder(ref: str, roots: list[Path]) -> Path:
    """Resolve ``ref`` (symlinks included) and require it under one of ``roots``."""
    path = Path(ref).expanduser()
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ModelLoadError(f"The local folder '{ref}' does not exist.") from None
    allowed = [Path(r).expanduser().resolve() for r in roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in allowed):
        where = ", ".join(str(r) for r in allowed) or "(none configured)"
        raise ModelLoadError(
            f"The folder '{ref}' is outside the allowed model folders ({where}); "
            "put it there or add its parent to LMW_MODEL_ROOTS."
        )
    if not resolved.is_dir():
        raise ModelLoadError(f"'{ref}' is a file, not a model folder.")
    if not (resolved / "config.json").is_file() and not (resolved / "adapter_config.json").is_file():
        raise ModelLoadError(f"The folder '{ref}' has no config.json, so it is not a transformers model folder.")
    return resolved


def resolve(ref: str, config: AppConfig) -> ModelRef:
    """Turn a user-supplied reference into a :class:`ModelRef`, or raise :class:`ModelLoadError`."""
    ref = (ref or "").strip()
    if not ref:
        raise ModelLoadError("Choose a model first.")
    if len(ref) > MAX_REF_CHARS:
        raise ModelLoadError("That model name is too long.")
    if ref in EMBEDDED:
        return ModelRef(ref, "embedded", embedded=EMBEDDED[ref])
    if ref.startswith("run:"):
        run = RunStore(config.runs_dir).get(ref[4:])
        return ModelRef(ref, "run", str(run.adapter_dir), run=run, base=resolve(run.base_model, config))
    if _is_path_like(ref) or Path(ref).expanduser().exists():
        return ModelRef(ref, "local", str(check_local_folder(ref, config.model_roots)))
    if HUB_ID.match(ref):
        return ModelRef(ref, "hub", ref)
    raise ModelLoadError(
        f"'{ref}' is neither an embedded model ({', '.join(EMBEDDED)}), a fine-tuned run, "
        "a local folder nor a valid Hugging Face Hub id (like 'owner/model')."
    )


def kind_from_config(folder: Path) -> str | None:
    """Guess the model kind from ``config.json``'s architectures, if readable."""
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for arch in cfg.get("architectures") or []:
        for suffix, kind in ARCH_KINDS:
            if arch.endswith(suffix):
                return kind
    return "seq2seq" if cfg.get("is_encoder_decoder") else "encoder"
