"""Before and after a fine-tune: the base model and the run's adapter scored on the same validation rows with the
Evaluate tab's code (:mod:`pipelines.evaluation`: same predictors, metrics and seeded bootstrap), so the Fine-tune
tab's results panel shows the numbers the Evaluate tab would show for the same model and rows.

The launched child calls :func:`evaluate_before` on the main process of a fresh run before the first optimizer
step, and :func:`evaluate_after` once the final adapter is saved. Both take the run folder and its
:class:`~pipelines.training.spec.RunSpec` (the data comes from the folder's ``data.json`` unless given). For a
classifier, :func:`evaluate_before` also fits the frozen-embedding baseline (:mod:`pipelines.training.baseline`)
on the run's train split (a seeded sample of :data:`BASELINE_MAX_TRAIN` rows when it is bigger) and scores it on
the whole validation split, the rows the run's own validation metrics use.

The rows: the run's validation split (same split as training), the first :data:`MAX_ROWS` of it (causal LMs:
:data:`LM_MAX_ROWS`, replies of at most :data:`MAX_NEW_TOKENS` tokens), so each side costs seconds.

- classification: the base as the app's zero-shot method for its kind (an encoder by embeddings, a causal LM by
  label likelihood) with the run's label set; the adapter as the fine-tuned classifier;
- causal LM with prompt/response rows: generation metrics (ROUGE, BLEU, chrF, exact match, token F1, length)
  and the reference's perplexity; with plain text rows: perplexity and bits per token.

``before_after.json`` in the run folder (written whole, never half)::

    {"version": 1,
     "task": "classification",            # the Evaluate tab's task: classification | generation | lm
     "rows": 84,                          # validation rows scored
     "row_indices": [3, 17, ...],         # their indices in the run's data.json examples
     "labels": ["account", ...],          # classification: the run's label set ([] otherwise)
     "options": {"resamples": 1000, "seed": 0, "max_new_tokens": 24},
     "before": {"model": "minilm-l6",     # the base model reference
                "method": "encoder",      # the head it was scored with (encoder = zero-shot embeddings)
                "created": "2026-...", "seconds": 1.9,
                "metrics": {"accuracy": {"value": .., "low": .., "high": ..}, "macro_f1": {...}},
                "outputs": [{"prediction": "billing"}, ...]},   # per row, the predictor's output
     "after": {"model": "run:<id>", "method": "seq-cls", "created": .., "seconds": ..,
               "metrics": {...}, "outputs": [...]},            # absent until the run has ended
     "p_values": {"accuracy": 0.002, ...}}                     # paired bootstrap, after vs before (with "after")

Metric names and the ``{"value", "low", "high"}`` intervals are the Evaluate tab's (``report["metrics"][model]``).
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import AppConfig
from pipelines.messages import Msg
from pipelines.models.manager import ModelManager
from pipelines.models.refs import ModelRef
from pipelines.training.enums import TrainTask

if TYPE_CHECKING:
    from pipelines.evaluation.spec import EvalData, EvalOptions
    from pipelines.training.data import PreparedData
    from pipelines.training.spec import RunSpec

log = logging.getLogger(__name__)
BEFORE_AFTER_FILE = "before_after.json"
VERSION = 1
MAX_ROWS = 200
LM_MAX_ROWS = 24
MAX_NEW_TOKENS = 24
RESAMPLES = 1000
SEED = 0
BASELINE_MAX_TRAIN = 5000  # training rows the baseline embeds at most (a seeded sample beyond)


class RunFolderManager(ModelManager):
    """A model manager that resolves the run's base reference to the spec's location and ``run:<id>`` to the run
    folder being written (not yet listed by the run store, its status not yet final)."""

    def __init__(self, config: AppConfig, run_dir: Path, spec: RunSpec, labels: list[str]) -> None:
        super().__init__(config)
        self.run_dir, self.spec, self.labels = Path(run_dir), spec, list(labels)

    @property
    def run_ref(self) -> str:
        return f"run:{self.spec.run_id}"

    def resolve(self, ref: str) -> ModelRef:
        if ref == self.spec.base_model:
            source = "local" if Path(self.spec.location).is_dir() else "hub"
            return ModelRef(ref, source, self.spec.location)
        if ref == self.run_ref:
            from pipelines.training.store import RunInfo

            info = RunInfo(self.spec.run_id, self.run_dir, self.spec.task, self.spec.base_model, labels=self.labels)
            return ModelRef(ref, "run", str(info.adapter_dir), run=info, base=self.resolve(self.spec.base_model))
        return super().resolve(ref)


def _options(task: str) -> EvalOptions:
    from pipelines.evaluation.spec import EvalOptions

    rows = MAX_ROWS if task == TrainTask.CLASSIFICATION else LM_MAX_ROWS
    return EvalOptions(max_rows=rows, max_new_tokens=MAX_NEW_TOKENS, resamples=RESAMPLES, seed=SEED)


def validation_rows(data: PreparedData, spec: RunSpec) -> list[int]:
    """The indices of the validation rows scored: the run's validation split, capped (see module doc)."""
    from pipelines.training.data import split

    s = spec.settings
    cap = MAX_ROWS if data.task == TrainTask.CLASSIFICATION else LM_MAX_ROWS
    return split(data, s.val_split, s.seed, s.max_val_rows)[1][:cap]


def eval_data(data: PreparedData, indices: list[int]) -> EvalData:
    """The rows as the Evaluate tab's :class:`EvalData`: classification (text, label), generation (prompt,
    response) or language modelling (text)."""
    from pipelines.evaluation.direct import rows_data
    from pipelines.evaluation.spec import EvalTask

    rows = [data.examples[i] for i in indices]
    if data.task == TrainTask.CLASSIFICATION:
        return rows_data(EvalTask.CLASSIFICATION, [r["text"] for r in rows], [data.labels[r["label"]] for r in rows],
                         labels=list(data.labels), max_rows=len(rows))
    if rows and "prompt" in rows[0]:
        return rows_data(EvalTask.GENERATION, [r["prompt"] for r in rows], [r["response"] for r in rows],
                         max_rows=len(rows))
    return rows_data(EvalTask.LANGUAGE_MODELLING, [r["text"] for r in rows], max_rows=len(rows))


def score_one(manager: ModelManager, ref: str, data: EvalData, options: EvalOptions) -> list[dict[str, Any]]:
    """The per-row outputs of ``ref`` on ``data`` (the Evaluate tab's predictor for the task)."""
    from pipelines.evaluation.job import EvaluationJob
    from pipelines.evaluation.predictors import predictor_factory

    job = EvaluationJob(data, [ref], predictor_factory(manager, data, options))
    job.execute()
    return job.results[0]


def report_of(data: EvalData, models: list[str], outputs: list[list[dict]], options: EvalOptions) -> dict[str, Any]:
    """The Evaluate tab's report of ``models`` with these per-row ``outputs``."""
    from pipelines.evaluation.scoring import score

    return score(data, models, outputs, options)


def read_before_after(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``before_after.json``, or None when absent or unreadable."""
    try:
        data = json.loads((Path(run_dir) / BEFORE_AFTER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "before" in data else None


def _write(run_dir: Path, record: dict[str, Any]) -> None:
    path = Path(run_dir) / BEFORE_AFTER_FILE
    part = path.with_suffix(".json.part")
    part.write_text(json.dumps(record, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    part.replace(path)


class BeforeAfter:
    """One run's before/after evaluation: its rows, the manager that loads base and adapter, the log."""

    def __init__(self, run_dir: Path, spec: RunSpec, data: PreparedData | None = None,
                 manager: ModelManager | None = None, config: AppConfig | None = None) -> None:
        from pipelines.training.spec import read_data

        self.run_dir, self.spec = Path(run_dir), spec
        self.data = data if data is not None else read_data(self.run_dir)
        self.owns_manager = manager is None  # a manager made here is emptied when the evaluation ends
        if manager is None:
            config = config or AppConfig.from_env()
            config.allow_pickle_weights = bool(getattr(spec, "allow_pickle", False))
            manager = RunFolderManager(config, self.run_dir, spec, self.data.labels)
        self.manager = manager
        self.indices = validation_rows(self.data, spec)
        self.rows = eval_data(self.data, self.indices)
        self.options = _options(self.data.task)

    @property
    def run_ref(self) -> str:
        return f"run:{self.spec.run_id}"

    def close(self) -> None:
        """Free the models this evaluation loaded (only when it made its own manager)."""
        if self.owns_manager:
            self.manager.unload()

    def log(self, key: str, **params: Any) -> None:
        """One keyed line in the run's event log (and the Python log)."""
        from pipelines.training.progress import EventLog

        message = Msg.of(key, **params)
        log.info("%s", message)
        try:
            EventLog(self.run_dir).log(message)
        except OSError:
            log.warning("Could not write the run log in %s", self.run_dir)

    def side(self, ref: str) -> dict[str, Any]:
        """Score ``ref``: model, method (head kind), created, seconds, outputs (metrics are added by the caller)."""
        from pipelines.evaluation.predictors import model_kind
        from pipelines.training.writer import now_iso

        started = time.perf_counter()
        outputs = score_one(self.manager, ref, self.rows, self.options)
        return {"model": ref, "method": model_kind(self.manager, ref), "created": now_iso(),
                "seconds": round(time.perf_counter() - started, 2), "outputs": outputs}

    def record(self) -> dict[str, Any]:
        return {"version": VERSION, "task": self.rows.task.value, "rows": len(self.rows),
                "row_indices": self.indices, "labels": list(self.rows.labels),
                "options": {"resamples": self.options.resamples, "seed": self.options.seed,
                            "max_new_tokens": self.options.max_new_tokens}}

    def before(self) -> dict[str, Any]:
        """Score the base model and write ``before_after.json`` with its side."""
        base = self.side(self.spec.base_model)
        report = report_of(self.rows, [base["model"]], [base["outputs"]], self.options)
        base["metrics"] = report["metrics"].get(base["model"], {})
        record = {**self.record(), "before": base}
        _write(self.run_dir, record)
        self.log("finetune_results.log.before", model=base["model"], rows=len(self.rows),
                 seconds=f"{base['seconds']:.1f}", summary=summary_line(base["metrics"]))
        return record

    def after(self) -> dict[str, Any]:
        """Score the adapter (and the base again if the before side is missing or was for other rows)."""
        record = read_before_after(self.run_dir)
        if record is None or record.get("row_indices") != self.indices or record.get("version") != VERSION:
            record = self.before()
        base = record["before"]
        adapter = self.side(self.run_ref)
        models = [base["model"], adapter["model"]]
        report = report_of(self.rows, models, [base["outputs"], adapter["outputs"]], self.options)
        adapter["metrics"] = report["metrics"].get(adapter["model"], {})
        pairs = report.get("pairs") or [{}]
        record = {**record, "after": adapter, "p_values": pairs[0].get("p_values", {})}
        _write(self.run_dir, record)
        self.log("finetune_results.log.after", model=adapter["model"], rows=len(self.rows),
                 seconds=f"{adapter['seconds']:.1f}", summary=summary_line(adapter["metrics"]))
        return record

    def baseline(self) -> dict[str, Any] | None:
        """Classifier runs: fit the frozen-embedding logistic regression and write ``baseline.json``."""
        from pipelines.tasks.embeddings import EmbeddingTask
        from pipelines.training.baseline import baseline_scores, write_baseline
        from pipelines.training.data import split

        if self.data.task != TrainTask.CLASSIFICATION:
            return None
        s = self.spec.settings
        train_idx, val_idx = split(self.data, s.val_split, s.seed, s.max_val_rows)
        if len(train_idx) > BASELINE_MAX_TRAIN:  # a seeded sample keeps a big set's baseline to seconds
            train_idx = sorted(random.Random(s.seed).sample(train_idx, BASELINE_MAX_TRAIN))
        encoder = EmbeddingTask(self.manager.load(self.spec.base_model, "encoder"), max_length=s.max_length)
        result = baseline_scores(encoder, [self.data.examples[i] for i in train_idx],
                                 [self.data.examples[i] for i in val_idx], self.data.labels, s.seed)
        result["encoder"] = self.spec.base_model
        from pipelines.training.augment import baseline_without  # added rows: the baseline without them too

        result.update(baseline_without(encoder, self.data, train_idx, val_idx, s.seed))
        write_baseline(self.run_dir, result)
        self.log("finetune_results.log.baseline", accuracy=f"{result['accuracy']:.3f}",
                 f1=f"{result['macro_f1']:.3f}", seconds=f"{result['seconds']:.1f}", rows=result["train_rows"])
        return result


SUMMARY_METRICS = ("accuracy", "macro_f1", "rougeL", "reference_perplexity", "perplexity", "bits_per_token")


def summary_line(metrics: dict[str, Any]) -> Msg:
    """The two headline metrics as one message (``Accuracy 0.9, Macro-F1 0.89``) for a log line."""
    names = [n for n in SUMMARY_METRICS if isinstance(metrics.get(n), dict) and metrics[n].get("value") is not None]
    parts = [Msg.of("finetune_results.log.metric", name=Msg.of(f"evaluate.metric_{n}"),
                    value=f"{metrics[n]['value']:.4g}") for n in names[:2]]
    if len(parts) < 2:
        return parts[0] if parts else Msg.of("finetune_results.log.no_metrics")
    return Msg.of("finetune_results.log.metrics", first=parts[0], second=parts[1])


def evaluate_before(run_dir: Path, spec: RunSpec, *, data: PreparedData | None = None,
                    manager: ModelManager | None = None) -> None:
    """Before the first step of a fresh run: the LR baseline (classifiers) and the base model's metrics."""
    job = BeforeAfter(run_dir, spec, data, manager)
    try:
        try:
            job.baseline()
        except Exception as exc:  # noqa: BLE001 - the baseline is optional; the before evaluation still runs
            log.exception("Baseline of %s failed", run_dir)
            job.log("finetune_results.log.baseline_failed", detail=(str(exc).splitlines() or [""])[0][:200])
        job.before()
    finally:
        job.close()


def evaluate_after(run_dir: Path, spec: RunSpec, *, data: PreparedData | None = None,
                   manager: ModelManager | None = None) -> None:
    """After the final adapter is saved: the adapter's metrics on the same rows, with paired p-values."""
    job = BeforeAfter(run_dir, spec, data, manager)
    try:
        job.after()
    finally:
        job.close()
