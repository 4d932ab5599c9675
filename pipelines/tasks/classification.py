"""What every classifier offers (:class:`Classifier`), plain result dataclasses, honest confidence, and which
NLI models are available for NLI zero-shot (offline, only local folders or the Hub cache can offer one)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pipelines.messages import Msg

if TYPE_CHECKING:
    from pipelines.config import AppConfig
    from pipelines.models.hub import HubCheck

log = logging.getLogger(__name__)
LOW_CONFIDENCE_MARGIN = 0.1  # the top label is "barely above chance" below this share of the way to certainty
MAX_NLI_SCAN = 200  # config.json files read when looking for NLI models


@runtime_checkable
class Classifier(Protocol):
    """``classify(texts) -> [{"label", "scores"}]``; ``window`` rows per call in CSV mode; ``describe()`` a note."""

    labels: list[str]
    batch_size: int
    window: int

    def classify(self, texts: list[str]) -> list[dict]: ...

    def describe(self) -> Msg | None: ...


class BaseClassifier:
    """Defaults of the :class:`Classifier` protocol: a CSV window of one mini-batch, nothing to describe."""

    labels: list[str]
    batch_size = 16

    @property
    def window(self) -> int:
        return self.batch_size

    def describe(self) -> Msg | None:
        return None


@dataclass(frozen=True)
class Confidence:
    """How far the top label is above chance: ``margin`` is 0 at a uniform distribution and 1 at certainty."""

    top: float
    chance: float
    margin: float

    @classmethod
    def of(cls, scores: dict[str, float]) -> Confidence:
        chance = 1 / max(1, len(scores))
        top = max(scores.values(), default=0.0)
        margin = (top - chance) / (1 - chance) if chance < 1 else 1.0
        return cls(top=top, chance=chance, margin=max(0.0, margin))

    @property
    def low(self) -> bool:
        return self.margin < LOW_CONFIDENCE_MARGIN

    def note(self) -> Msg | None:
        """A note when the scores are close to uniform, else None."""
        if not self.low:
            return None
        return Msg.of("classify.low_confidence", top=f"{self.top:.0%}", chance=f"{self.chance:.0%}")


@dataclass(frozen=True)
class Prediction:
    """One text's top label and ``{label: probability}`` (most likely first)."""

    label: str
    scores: dict[str, float]

    @classmethod
    def of(cls, result: dict) -> Prediction:
        return cls(label=result["label"], scores=dict(result["scores"]))

    @property
    def confidence(self) -> Confidence:
        return Confidence.of(self.scores)


@dataclass(frozen=True)
class SingleResult:
    """What the Classify tab shows for one text: the prediction and the notes about it (as messages)."""

    prediction: Prediction
    notes: tuple[Msg, ...] = field(default_factory=tuple)


# ---- NLI models available here -------------------------------------------------------------------------------
def is_nli_config(path: Path) -> bool:
    """Whether ``config.json`` at ``path`` describes a sequence classifier with an 'entailment' label."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    labels = [str(k).lower() for k in (cfg.get("label2id") or {})]
    labels += [str(v).lower() for v in (cfg.get("id2label") or {}).values()]
    return any(label.startswith("entail") for label in labels)


def _hub_cache() -> Path | None:
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    return Path(constants.HF_HUB_CACHE)


def local_nli_models(config: AppConfig) -> list[str]:
    """References of NLI models present here: folders under the model roots, then hub ids in the Hub cache."""
    found: list[str] = []
    scanned = 0
    for root in config.model_roots:
        for cfg in sorted(Path(root).glob("*/config.json")) if Path(root).is_dir() else []:
            scanned += 1
            if scanned > MAX_NLI_SCAN:
                return found
            if is_nli_config(cfg):
                found.append(str(cfg.parent))
    cache = _hub_cache()
    for cfg in sorted(cache.glob("models--*/snapshots/*/config.json")) if cache and cache.is_dir() else []:
        scanned += 1
        if scanned > MAX_NLI_SCAN:
            break
        repo = cfg.parents[2].name.removeprefix("models--").replace("--", "/")
        if repo not in found and is_nli_config(cfg):
            found.append(repo)
    return found


@dataclass(frozen=True)
class NliAvailability:
    """Whether NLI zero-shot can work here: local NLI models, or a reachable Hub to fetch one from."""

    models: tuple[str, ...] = ()
    hub: bool = False

    @property
    def available(self) -> bool:
        return bool(self.models) or self.hub

    @property
    def default_model(self) -> str:
        return self.models[0] if self.models else ""

    def note(self) -> Msg | None:
        """One line saying what would enable NLI zero-shot, when it cannot work here."""
        return None if self.available else Msg.of("classify.nli_unavailable")


def nli_availability(config: AppConfig, hub: HubCheck | None = None) -> NliAvailability:
    """Look for NLI models (folders, Hub cache) and, without any, whether the Hub is reachable (``hub``: the
    manager's cached check, so a page load does not probe the network every time)."""
    try:
        models = tuple(local_nli_models(config))
    except OSError:
        log.exception("Looking for NLI models failed")
        models = ()
    if models:
        return NliAvailability(models=models)
    from pipelines.models.hub import hub_reachable

    return NliAvailability(hub=hub_reachable(hub))
