"""Data augmentation for classification runs: EDA (seeded random deletion and swap) and paraphrases written by an
instruct model, with the label kept. Only the training split grows: every added example carries
``"augmented": "eda" | "paraphrase"`` (and ``"source"``: the row it came from), and
:func:`pipelines.training.data.split` keeps such rows out of validation, so the validation rows are exactly those
of the same data without augmentation.

The spec's ``"augment"`` section: ``{"eda": n_per_row, "paraphrase": {"model": ref, "n": k}}`` (off by default).
Paraphrasing happens in the app before the launch, not in the training child: the app holds the task LMs
(local models, llama.cpp and the configured remote endpoints), the caller shows its progress, and the rows land in
the run's ``data.json`` so a resumed run trains on exactly the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pipelines.errors import InputError
from pipelines.messages import Msg
from pipelines.training.data import PreparedData, split
from pipelines.training.enums import TrainTask

AUGMENTED = "augmented"  # the example key marking an added, training-only row
MAX_EDA = 10
MAX_PARAPHRASES = 5
DELETE_P = 0.15  # chance of dropping each word in a random deletion
MAX_PARAPHRASE_ROWS = 2000  # training rows paraphrased at most (a seeded sample beyond)
MAX_NEW_TOKENS = 96
# One instruction per paraphrase: a greedy model answers one prompt the same way every time, so each variant asks
# for a different rewording.
STYLES = (
    "Rewrite the following text in different words, keeping its meaning.",
    "Paraphrase the following text in a more formal tone, keeping its meaning.",
    "Paraphrase the following text in a casual, everyday tone, keeping its meaning.",
    "Rewrite the following text more briefly, keeping its meaning.",
    "Rewrite the following text with a different sentence structure, keeping its meaning.",
)
SYSTEM = "You rewrite texts. Reply with the rewritten text only, no explanations, no quotes."
Report = Callable[[int, int], None]  # (paraphrases written, paraphrases in all)


@dataclass(frozen=True)
class AugmentSettings:
    """How many rows to add per training row: ``eda`` random deletion/swap variants and ``paraphrase_n``
    paraphrases by ``paraphrase_model`` (an instruct model reference or ``remote:<endpoint>/<model>``)."""

    eda: int = 0
    paraphrase_model: str = ""
    paraphrase_n: int = 0

    @property
    def enabled(self) -> bool:
        return self.eda > 0 or self.paraphrase_n > 0

    def to_dict(self) -> dict[str, Any]:
        if not self.enabled:
            return {}
        out: dict[str, Any] = {"eda": self.eda} if self.eda else {}
        if self.paraphrase_n:
            out["paraphrase"] = {"model": self.paraphrase_model, "n": self.paraphrase_n}
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> AugmentSettings:
        """Parse the spec's ``augment`` section (``None`` or ``{}``: off)."""
        if not raw:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"eda", "paraphrase"}:
            raise InputError("augment.bad_spec")
        para = raw.get("paraphrase") or {}
        if not isinstance(para, dict) or set(para) - {"model", "n"}:
            raise InputError("augment.bad_spec")
        try:
            eda, n = int(raw.get("eda") or 0), int(para.get("n") or 0)
        except (TypeError, ValueError):
            raise InputError("augment.bad_spec") from None
        if not 0 <= eda <= MAX_EDA:
            raise InputError("augment.bad_count", name="eda", limit=MAX_EDA)
        if not 0 <= n <= MAX_PARAPHRASES:
            raise InputError("augment.bad_count", name="paraphrase.n", limit=MAX_PARAPHRASES)
        return cls(eda, str(para.get("model") or "").strip(), n)


def random_deletion(words: list[str], rng: random.Random, p: float = DELETE_P) -> list[str]:
    """``words`` with each dropped with chance ``p`` (at least one word kept, at least one dropped when possible)."""
    if len(words) < 2:
        return list(words)
    kept = [w for w in words if rng.random() >= p]
    if not kept:
        return [rng.choice(words)]
    if len(kept) == len(words):
        del kept[rng.randrange(len(kept))]
    return kept


def random_swap(words: list[str], rng: random.Random, swaps: int = 1) -> list[str]:
    """``words`` with ``swaps`` random pairs of positions exchanged."""
    out = list(words)
    for _ in range(swaps if len(out) >= 2 else 0):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def eda_variants(text: str, n: int, rng: random.Random) -> list[str]:
    """Up to ``n`` distinct variants of ``text`` by random deletion and swap (alternating), none equal to it."""
    words = text.split()
    seen, out = {text}, []
    for attempt in range(n * 4):
        if len(out) >= n or len(words) < 2:
            break
        op = random_deletion if attempt % 2 == 0 else random_swap
        variant = " ".join(op(words, rng))
        if variant not in seen:
            seen.add(variant)
            out.append(variant)
    return out


def clean_paraphrase(reply: str, original: str, limit: int) -> str | None:
    """The model's reply as one paraphrase: first non-empty line, quotes and labels stripped; None when empty,
    the same as the original, or much longer than it."""
    lines = [line.strip() for line in (reply or "").splitlines() if line.strip()]
    if not lines:
        return None
    text = lines[0]
    for prefix in ("Paraphrase:", "Rewritten text:", "Rewrite:"):
        if text.lower().startswith(prefix.lower()):
            text = text[len(prefix):].strip()
    text = text.strip().strip("\"'“”").strip()
    if not text or text.lower() == original.strip().lower() or len(text) > min(limit, max(40, 3 * len(original))):
        return None
    return text


def paraphrase_prompts(text: str, n: int) -> list[str]:
    """The ``n`` prompts asking for ``text``'s paraphrases, one style each."""
    return [f"{STYLES[i % len(STYLES)]}\n\nText: {text}" for i in range(n)]


class Augmenter:
    """Adds EDA variants and paraphrases of the training rows of ``data`` (see module doc).

    :meth:`steps` yields ``(done, total)`` while paraphrasing (so a caller can show progress), then
    :attr:`result` holds the augmented data; :meth:`run` does it in one call."""

    def __init__(self, data: PreparedData, settings: AugmentSettings, *, seed: int, val_split: float,
                 max_val_rows: int = 500, lm_factory: Callable[[str], Any] | None = None) -> None:
        if settings.enabled and data.task != TrainTask.CLASSIFICATION:
            raise InputError("augment.classification_only")
        if settings.paraphrase_n and lm_factory is None:
            raise InputError("augment.no_paraphraser")
        self.data, self.settings, self.seed = data, settings, seed
        self.train_idx = split(data, val_split, seed, max_val_rows)[0] if settings.enabled else []
        self.lm_factory = lm_factory
        self.result: PreparedData = data
        self.counts = {"eda": 0, "paraphrase": 0}

    def eda_rows(self) -> list[dict]:
        rng = random.Random(self.seed)
        rows = []
        for i in self.train_idx:
            example = self.data.examples[i]
            for variant in eda_variants(example["text"], self.settings.eda, rng):
                rows.append({"text": variant, "label": example["label"], AUGMENTED: "eda", "source": i})
        return rows

    def paraphrase_steps(self, out: list[dict]) -> Iterator[tuple[int, int]]:
        """Ask the model for the paraphrases of each training row (a seeded sample of at most
        :data:`MAX_PARAPHRASE_ROWS` rows); appends them to ``out``; yields progress."""
        lm = self.lm_factory(self.settings.paraphrase_model)  # type: ignore[misc]
        rows = list(self.train_idx)
        if len(rows) > MAX_PARAPHRASE_ROWS:
            rows = sorted(random.Random(self.seed).sample(rows, MAX_PARAPHRASE_ROWS))
        n, total = self.settings.paraphrase_n, len(rows) * self.settings.paraphrase_n
        yield 0, total
        for done, i in enumerate(rows, start=1):
            example = self.data.examples[i]
            budget = min(MAX_NEW_TOKENS, 2 * lm.count_tokens(example["text"]) + 16)
            replies = lm.replies(paraphrase_prompts(example["text"], n), system=SYSTEM, max_new_tokens=budget)
            seen = {example["text"].strip().lower()}
            for reply in replies:
                text = clean_paraphrase(reply, example["text"], 4 * MAX_NEW_TOKENS)
                if text is not None and text.lower() not in seen:
                    seen.add(text.lower())
                    out.append({"text": text, "label": example["label"], AUGMENTED: "paraphrase", "source": i})
            yield done * n, total

    def steps(self) -> Iterator[tuple[int, int]]:
        if not self.settings.enabled:
            return
        added = self.eda_rows() if self.settings.eda else []
        if self.settings.paraphrase_n:
            yield from self.paraphrase_steps(added)
        self.result = with_added(self.data, added, self.settings)
        self.counts = added_counts(self.result.examples)

    def run(self, report: Report | None = None) -> PreparedData:
        for done, total in self.steps():
            if report is not None:
                report(done, total)
        return self.result


def added_counts(examples: Sequence[dict]) -> dict[str, int]:
    """How many added rows of each kind ``examples`` hold: ``{"eda": a, "paraphrase": b}``."""
    counts = {"eda": 0, "paraphrase": 0}
    for example in examples:
        kind = example.get(AUGMENTED)
        if kind in counts:
            counts[kind] += 1
    return counts


def with_added(data: PreparedData, added: list[dict], settings: AugmentSettings) -> PreparedData:
    """``data`` with ``added`` appended and a report that says how many rows were added (counts and a note)."""
    counts = added_counts(added)
    report = replace(data.report, notes=[*data.report.notes, Msg.of(
        "augment.report", added=len(added), eda=counts["eda"], paraphrase=counts["paraphrase"],
        model=settings.paraphrase_model or "-")])
    report.counts = {**report.counts, "augmented_eda": counts["eda"], "augmented_paraphrase": counts["paraphrase"]}
    return PreparedData(data.task, [*data.examples, *added], list(data.labels), report)


def baseline_without(encoder: Any, data: PreparedData, train_idx: list[int], val_idx: list[int],
                     seed: int) -> dict[str, Any]:
    """For a run with added rows: the frozen-embedding baseline fitted on the original training rows only and
    scored on the same validation rows, as ``{"without_augmentation": {...}}`` (``{}`` without added rows)."""
    from pipelines.training.baseline import baseline_scores

    original = [i for i in train_idx if not data.examples[i].get(AUGMENTED)]
    if len(original) == len(train_idx):
        return {}
    result = baseline_scores(encoder, [data.examples[i] for i in original], [data.examples[i] for i in val_idx],
                             data.labels, seed)
    keep = ("accuracy", "macro_f1", "train_rows", "seconds")
    return {"without_augmentation": {k: result[k] for k in keep}, "augmented_rows": len(train_idx) - len(original)}


def augmentation_line(baseline: dict[str, Any] | None, metrics: dict[str, Any] | None) -> Msg | None:
    """The results' line: the run's metric (trained with the added rows) beside the baseline with and without
    them; None for a run without augmentation."""
    if not baseline or "without_augmentation" not in baseline:
        return None
    without = baseline["without_augmentation"]
    run = (metrics or {}).get("accuracy")
    return Msg.of("augment.results", added=baseline.get("augmented_rows", 0),
                  run="-" if run is None else f"{float(run):.3f}", with_aug=f"{float(baseline['accuracy']):.3f}",
                  without=f"{float(without['accuracy']):.3f}")


def spec_augmenter(ctx: Any, data: PreparedData, spec: Any) -> Augmenter:
    """The :class:`Augmenter` for a ``finetune`` request (a :class:`~pipelines.training.spec.JobSpec`): its
    ``augment`` section, its seed and split; paraphrases come from ``ctx``'s task LM for the chosen model."""
    settings = AugmentSettings.from_dict(getattr(spec, "augment", None))
    s = spec.settings

    def lm_factory(ref: str) -> Any:
        from pipelines.generation.task_lm import task_lm

        return task_lm(ctx, ref)

    return Augmenter(data, settings, seed=s.seed, val_split=s.val_split, max_val_rows=s.max_val_rows,
                     lm_factory=lm_factory)


def spec_with_augment(spec_json: str, eda: Any, model: str | None, n: Any) -> str:
    """The form's spec JSON with its ``augment`` section set from the augmentation fields (none: unchanged)."""
    import json

    try:
        spec = json.loads(spec_json or "{}")
        eda_count, para_count = int(eda or 0), int(n or 0)
    except (TypeError, ValueError):
        raise InputError("augment.bad_spec") from None
    raw: dict[str, Any] = {"eda": eda_count} if eda_count else {}
    if para_count:
        raw["paraphrase"] = {"model": (model or "").strip(), "n": para_count}
    settings = AugmentSettings.from_dict(raw)  # checks the counts
    if settings.enabled and isinstance(spec, dict):
        spec["augment"] = settings.to_dict()
    return json.dumps(spec)
