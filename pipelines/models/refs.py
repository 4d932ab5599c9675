"""Resolve a model reference: an embedded short name, ``run:<id>``, a local folder or a hub id."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import AppConfig
from pipelines.errors import ModelLoadError
from pipelines.models.embedded import EMBEDDED, EmbeddedModel
from pipelines.training.store import RunInfo, RunStore

HUB_ID = re.compile(r"^(?!.*\.\.)(?!.*--)[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$", re.ASCII)
MAX_REF_CHARS = 300
# Weights that are Python pickles: loading them can run code, so they need config.allow_pickle_weights.
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")

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


def _exists(ref: str) -> bool:
    try:
        return Path(ref).expanduser().exists()
    except (OSError, RuntimeError, ValueError):
        return False


def is_hub_id(ref: str) -> bool:
    """Whether ``ref`` is a well-formed Hub id (``name`` or ``owner/name``; ASCII letters, digits, ``_ . -``)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not HUB_ID.match(ref):
        return False
    try:
        validate_repo_id(ref)
    except HFValidationError:
        return False
    return True


def contained_path(ref: str, roots: list[Path]) -> Path:
    """Resolve ``ref`` (symlinks included) and require it to lie under one of ``roots``.

    Containment is checked before existence, so paths outside the roots all get the same answer and the app
    cannot be used to probe which files exist on the server.
    """
    try:
        resolved = Path(ref).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        raise ModelLoadError("models.error.folder_missing", ref=ref) from None
    allowed = [Path(r).expanduser().resolve() for r in roots]
    if not any(resolved.is_relative_to(root) for root in allowed):
        where = ", ".join(str(r) for r in allowed) or "-"
        raise ModelLoadError("models.error.folder_outside", ref=ref, roots=where)
    return resolved


def check_local_folder(ref: str, roots: list[Path]) -> Path:
    """Resolve ``ref`` and require a model folder under one of ``roots`` (:func:`contained_path`)."""
    resolved = contained_path(ref, roots)
    if not resolved.exists():
        raise ModelLoadError("models.error.folder_missing", ref=ref)
    if not resolved.is_dir():
        raise ModelLoadError("models.error.not_a_folder", ref=ref)
    if not (resolved / "config.json").is_file() and not (resolved / "adapter_config.json").is_file():
        raise ModelLoadError("models.error.no_config", ref=ref)
    return resolved


def check_weights(folder: Path, name: str, allow_pickle: bool) -> None:
    """Refuse a folder whose only weights are pickles unless ``allow_pickle``."""
    if allow_pickle or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
    if pickles:
        raise ModelLoadError("models.error.pickle_only", name=name, files=", ".join(pickles[:3]))


def run_store(config: AppConfig) -> RunStore:
    """The runs of ``config`` with its admins (``LMW_USERS``), who see every user's runs."""
    from pipelines.users import users_of

    return RunStore(config.runs_dir, admins=users_of(config).admins)


def resolve(ref: str, config: AppConfig, user: str | None = None) -> ModelRef:
    """Turn a user-supplied reference into a :class:`ModelRef`, or raise :class:`ModelLoadError`.

    ``user`` (with login): a ``run:<id>`` must be that user's run (or the user an admin)."""
    ref = (ref or "").strip()
    if not ref:
        raise ModelLoadError("models.error.choose_first")
    if len(ref) > MAX_REF_CHARS:
        raise ModelLoadError("models.error.name_too_long", limit=MAX_REF_CHARS)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in ref):
        raise ModelLoadError("models.error.control_chars")
    if ref in EMBEDDED:
        return ModelRef(ref, "embedded", embedded=EMBEDDED[ref])
    if ref.startswith("run:"):
        run = run_store(config).get(ref[4:], user)
        return ModelRef(ref, "run", str(run.adapter_dir), run=run, base=resolve(run.base_model, config))
    if (_is_path_like(ref) or _exists(ref)) and ref.lower().endswith(".gguf"):
        # a GGUF file: llama.cpp answers it (engines.py); transformers loads model folders only, so say which to pick
        if not contained_path(ref, config.model_roots).is_file():
            raise ModelLoadError("models.error.folder_missing", ref=ref)
        raise ModelLoadError("models.error.gguf_needs_llamacpp", ref=ref)
    if _is_path_like(ref) or _exists(ref):
        folder = check_local_folder(ref, config.model_roots)
        check_weights(folder, ref, config.allow_pickle_weights)
        return ModelRef(ref, "local", str(folder))
    if is_hub_id(ref):
        return ModelRef(ref, "hub", ref)
    raise ModelLoadError("models.error.unknown_ref", ref=ref, embedded=", ".join(EMBEDDED))


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
