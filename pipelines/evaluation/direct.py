"""Evaluate one to four models on rows held in memory, in the calling thread: no session, job thread or UI.

The Fine-tune tab's before/after panel uses this, so it shows the Evaluate tab's numbers (same predictors, same
chunks, same metrics, same seeded bootstrap)::

    data = rows_data("classification", texts, labels)
    result = score_models(ctx, ["minilm-l6", "run:<id>"], data, EvalOptions(resamples=1000))
    result.report["metrics"]["run:<id>"]["accuracy"]   # {"value": .., "low": .., "high": ..}
    result.report["pairs"][0]["p_values"]["accuracy"]  # paired-bootstrap p of the difference
    result.changed("minilm-l6", "run:<id>")            # the rows that changed, biggest first

``source`` is the :class:`~pipelines.context.AppContext` (inputs cut to the app's limits like the tab does, and
``remote:`` models allowed) or a bare :class:`~pipelines.models.manager.ModelManager` (e.g. in a training child).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.evaluation.job import EvaluationJob
from pipelines.evaluation.predictors import predictor_factory
from pipelines.evaluation.remote import check_remote
from pipelines.evaluation.runner import Evaluation, EvaluationResult
from pipelines.evaluation.spec import DEFAULT_ROWS, EvalData, EvalOptions, EvalTask, build_data, parse_models

if TYPE_CHECKING:
    from pipelines.context import AppContext
    from pipelines.models.manager import ModelManager


def rows_data(task: EvalTask | str, inputs: list[str], targets: list[str] | None = None,
              labels: list[str] | None = None, max_rows: int = DEFAULT_ROWS) -> EvalData:
    """Rows in memory to score: ``task`` is classification (targets: labels), generation (targets: references)
    or lm (no targets). Empty rows are skipped and at most ``max_rows`` kept, with notes, as in the tab.
    ``labels``: the label set of a classifier (default: the labels found in ``targets``)."""
    return build_data(task, list(inputs), None if targets is None else list(targets), max_rows, labels=labels)


def score_models(source: AppContext | ModelManager, models: list[str], data: EvalData,
                 options: EvalOptions | None = None, write_files: bool = False) -> EvaluationResult:
    """Evaluate ``models`` (1-4 references) on ``data`` and return the report the Evaluate tab shows.

    Raises the keyed error of the first model that cannot load or score. ``write_files``: also write
    ``predictions.csv`` and ``evaluation.json`` (``result.files``); the run's evaluation log is not touched.
    """
    refs = list(parse_models(list(models)))
    options = options or EvalOptions()
    limits = getattr(source, "limits", None)
    if limits is not None:
        data.inputs = limits.cut_many(data.inputs)
    check_remote(refs, data)
    job = EvaluationJob(data, refs, predictor_factory(source, data, options))
    job.execute()
    evaluation = Evaluation(data, refs, options, job, runs=None)
    return evaluation.result(write_files=write_files)


def score_rows(source: AppContext | ModelManager, models: list[str], task: EvalTask | str, inputs: list[str],
               targets: list[str] | None = None, options: EvalOptions | None = None,
               labels: list[str] | None = None) -> dict[str, Any]:
    """Shorthand: :func:`rows_data` then :func:`score_models`; returns the public report (metrics, pairs, ...)."""
    options = options or EvalOptions()
    data = rows_data(task, inputs, targets, labels, options.max_rows)
    return score_models(source, models, data, options).public()
