"""Start an evaluation for a session and build its result: the one entry point for the tab and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.evaluation.job import KIND, EvaluationJob
from pipelines.evaluation.outputs import changed_rows, prediction_rows, write_predictions
from pipelines.evaluation.predictors import predictor_factory
from pipelines.evaluation.remote import check_remote, unavailable_notes
from pipelines.evaluation.run_report import record_evaluation, write_run_reports
from pipelines.evaluation.scoring import score
from pipelines.evaluation.spec import EvalData, EvalOptions, parse_models, read_rows
from pipelines.messages import Msg

if TYPE_CHECKING:
    from pipelines.context import AppContext
    from pipelines.training.store import RunStore


@dataclass
class EvaluationResult:
    """The report (metrics with intervals, p-values, details), the per-row records and the two download files."""

    report: dict[str, Any]
    records: list[dict[str, Any]]
    files: list[str]
    notes: list[Msg] = field(default_factory=list)

    def changed(self, a: str, b: str, limit: int = 50) -> list[dict[str, Any]]:
        return changed_rows(self.report, self.records, a, b, limit)

    def public(self) -> dict[str, Any]:
        """The report without the per-row scores (what the API's JSON shows)."""
        return {k: v for k, v in self.report.items() if k != "per_row"}


@dataclass
class Evaluation:
    """One session's evaluation: the rows, models, options and the running job."""

    data: EvalData
    models: list[str]
    options: EvalOptions
    job: EvaluationJob
    runs: RunStore | None = None  # where evaluations of run:<id> models are recorded for the run report

    def result(self, write_files: bool = True, lang: str = "en") -> EvaluationResult:
        """Score what is done (all rows, or the rows every model finished before a Stop) and write the files:
        the predictions, and for each evaluated run its report (HTML and Markdown) with this evaluation in it."""
        report = score(self.data, self.models, self.job.results, self.options)
        records = prediction_rows(self.data, self.models, self.job.results, report)
        files = write_predictions(records, report) if records and write_files else []
        if self.runs is not None and records:
            record_evaluation(self.runs, report)
            if files:
                files += write_run_reports(self.runs, self.models, Path(files[0]).parent, lang)
        notes = [*self.data.notes, *self.label_notes(), *unavailable_notes(report)]
        return EvaluationResult(report, records, files, notes)

    def label_notes(self) -> list[Msg]:
        """A note for each classifier whose predicted labels are none of the file's labels (a run trained on
        other label names scores 0 here, and the user should know why)."""
        if not self.data.labels:
            return []
        notes, known = [], set(self.data.labels)
        for model, rows in zip(self.models, self.job.results, strict=True):
            predicted = {str(r.get("prediction")) for r in rows}
            if predicted and not predicted & known:
                notes.append(Msg.of("evaluate.labels_disjoint", model=model, predicted=", ".join(sorted(predicted)[:5]),
                                    labels=", ".join(self.data.labels[:5])))
        return notes


def start_evaluation(ctx: AppContext, session: str, file: Any, input_column: str | None, target_column: str | None,
                     models: str | list[str] | None, task: str | None, options: EvalOptions) -> Evaluation:
    """Read and check everything, register the job under ``(session, "evaluate")`` and start it."""
    refs = list(parse_models(models))
    options = options.checked(ctx.config.max_rows)
    table = ctx.read_upload(file)
    data = read_rows(table, task, input_column, target_column, options.max_rows)
    data.inputs = ctx.limits.cut_many(data.inputs)
    data.notes = [*[getattr(n, "msg", n) for n in table.notes if isinstance(getattr(n, "msg", n), Msg)], *data.notes]
    check_remote(refs, data)

    job = EvaluationJob(data, refs, predictor_factory(ctx, data, options))
    ctx.sessions.put(session, KIND, job)
    job.start()
    return Evaluation(data, refs, options, job, ctx.runs)
