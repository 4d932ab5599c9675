"""The corrections panel's handlers (Classify tab, batch mode): plain values in, plain values out.

After a batch run with a label column, :meth:`CorrectionsHandlers.table` lists the wrong and low-confidence rows;
:meth:`CorrectionsHandlers.retrain` starts a new fine-tune on the original data plus the user's corrections (the
source run's settings when the batch used ``run:<id>``, else a preset) through the Fine-tune tab's
:class:`~components.finetune_handlers.FinetuneHandlers` (one training slot), follows it, and ends with the metric
before and after. The logic is :mod:`pipelines.training.corrections`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.finetune_handlers import FinetuneHandlers
from components.i18n import say, text
from pipelines.context import AppContext
from pipelines.errors import InputError
from pipelines.messages import Msg
from pipelines.training import corrections as fix

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.training.data import PreparedData

MAX_SCORED_ROWS = 2000  # rows the new run classifies for the "after" metric


@dataclass
class CorrectionsView:
    """The table (rows, headers in the request's language), the note above it, and the batch it came from."""

    rows: list[list[Any]]
    headers: list[str]
    note: str
    file: str | None
    text_column: str
    label_column: str
    model: str = ""  # the model of an Evaluate result (a batch result's comes from the Classify tab's picker)


@dataclass
class Source:
    """Where the new run's settings and extra data come from: the batch's run, else a preset."""

    base_model: str
    settings: dict[str, Any]
    preset: str
    data: PreparedData | None
    previous_accuracy: Any
    name: str


def headers(lang: str) -> list[str]:
    return [text(f"corrections.column_{c}", lang) for c in fix.COLUMNS]


def result_csv(files: Any) -> str | None:
    """The CSV among a batch run's download files (a path, a list of paths or of file values)."""
    items = files if isinstance(files, list | tuple) else [files]
    paths = [getattr(f, "path", None) or (f.get("path") if isinstance(f, dict) else f) for f in items if f]
    paths = [str(p) for p in paths if p]
    return next((p for p in paths if p.endswith(".csv")), paths[0] if paths else None)


class CorrectionsHandlers:
    """Fix wrong rows, retrain."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.finetune = FinetuneHandlers(ctx)

    def load(self, file: Any) -> tuple[pd.DataFrame, str]:
        """The batch result (or Evaluate predictions, as one) and the model an Evaluate result names."""
        if not file:
            raise InputError("corrections.no_result")
        return fix.as_result(self.ctx.read_upload(file).frame)

    def table(self, files: Any, text_column: str | None, label_column: str | None, lang: str = "en",
              threshold: float = fix.LOW_CONFIDENCE) -> CorrectionsView | None:
        """The corrections table of a finished batch run; None when the run had no label column."""
        path = result_csv(files)
        if not path:
            return None
        frame, model = self.load(path)
        if not model and not (label_column or "").strip():
            return None  # a batch run without a label column: nothing to correct
        if frame.empty:
            return None
        text_col, label_col = fix.result_columns(list(frame.columns), text_column, label_column)
        rows = fix.candidates(frame, text_col, label_col, threshold)
        before = fix.batch_metrics(frame, label_col)
        wrong = sum(r[2] != r[3] for r in rows)
        accuracy = f"{before.get('accuracy', 0.0):.3f}"
        note = (text("corrections.found_evaluation", lang, wrong=wrong, total=len(frame), model=model,
                     accuracy=accuracy) if model else
                text("corrections.found", lang, wrong=wrong, low=len(rows) - wrong, total=len(frame),
                     threshold=f"{threshold:.2f}", accuracy=accuracy))
        return CorrectionsView(rows, headers(lang), note, path, text_col, label_col, model)

    def source(self, model: str, preset_key: str, user: str | None = None) -> Source:
        """The settings and data of the batch's run (``run:<id>``), else ``preset_key`` on a trainable base."""
        from pipelines.models.embedded import EMBEDDED
        from pipelines.training.settings import DEFAULT_MODELS
        from pipelines.training.spec import RunSpec, read_data
        from pipelines.training.store import check_run_id

        ref = (model or "").strip()
        if ref.startswith("run:"):
            info = self.ctx.runs.find(check_run_id(ref.removeprefix("run:")), user)  # with login: the user's
            spec = RunSpec.read(info.path)
            return Source(spec.base_model, spec.settings.to_dict(), preset_key, read_data(info.path),
                          info.metrics.get("accuracy"), info.name or info.id)
        encoder = ref in EMBEDDED and EMBEDDED[ref].default_kind == "encoder"  # zero-shot by embeddings: train it
        base = ref if encoder or (ref and Path(ref).is_dir()) else ""
        return Source(base or DEFAULT_MODELS["classification"], {}, preset_key, None, None, "")

    def plan(self, file: Any, edits: Any, model: str, text_column: str | None, label_column: str | None,
             preset_key: str = "quick", user: str | None = None,
             ) -> tuple[str, str, list[str], fix.Corrected, dict[str, Any], Source]:
        """Write the training and corrected files; (training file, spec JSON, download files, corrections,
        the batch's metrics, the source)."""
        import json

        from pipelines.tables import write_csv
        from pipelines.uploads import gradio_temp_dir

        frame, named = self.load(file)
        model = model or named
        text_col, label_col = fix.result_columns(list(frame.columns), text_column, label_column)
        corrected = fix.corrected_rows(frame, text_col, label_col, fix.parse_edits(edits))
        before = fix.batch_metrics(frame, label_col)
        source = self.source(model, preset_key or "quick", user)
        folder = gradio_temp_dir() / f"lmw-corrections-{uuid.uuid4().hex[:12]}"
        folder.mkdir(parents=True, exist_ok=True)
        train_path = write_csv(fix.training_frame(corrected, source.data), folder / "training.csv")
        fixed = frame.drop(columns=[c for c in ("predicted_label", "score") if c in frame.columns])
        fixed = fixed.iloc[corrected.rows].reset_index(drop=True)
        fixed[label_col] = corrected.labels
        corrected_path = write_csv(fixed, folder / "corrected.csv")
        name = f"corrections of {source.name}" if source.name else "corrections"
        spec = {"task": "classification", "base_model": source.base_model, "name": name[:80],
                "columns": {"text": fix.TEXT, "label": fix.LABEL}, "preset": source.preset, "settings": source.settings}
        return str(train_path), json.dumps(spec), [str(corrected_path), str(train_path)], corrected, before, source

    def after(self, run_id: str, corrected: fix.Corrected) -> dict[str, Any]:
        """The new run's accuracy on the corrected batch rows (at most :data:`MAX_SCORED_ROWS`)."""
        from pipelines.tasks.classify import ClassifierSpec, make_classifier

        texts, labels = corrected.texts[:MAX_SCORED_ROWS], corrected.labels[:MAX_SCORED_ROWS]
        if not texts:
            return {}
        classifier = make_classifier(self.ctx.manager, ClassifierSpec("finetuned", f"run:{run_id}"))
        predicted = [r["label"] for r in classifier.classify(texts)]
        return fix.accuracy(labels, predicted)

    def retrain(self, file: Any, edits: Any, model: str, text_column: str | None, label_column: str | None,
                preset_key: str, session: str, lang: str = "en",
                user: str | None = None) -> Iterator[tuple[str, str, list[str] | None]]:
        """Start the new run (with login: ``user``'s, within their quota) and follow it: yields (run id, status,
        files); the last status is the before/after line. A failed run raises its error."""
        self.finetune.check_quota(user)
        train_path, spec_json, files, corrected, before, source = self.plan(
            file, edits, model, text_column, label_column, preset_key, user)
        job = None
        for job in self.finetune.start_steps(train_path, spec_json, session,
                                             fix.annotate(corrected, len(source.data.examples) if source.data else 0)):
            if isinstance(job, Msg):
                yield "", say(job, lang), files
        self.finetune.own(job, user)
        for shown in self.finetune.follow(job, lang):
            st = job.snapshot()
            if not shown.final:
                yield shown.run_id, text("corrections.training", lang, run=shown.run_id, step=st.step,
                                         total=st.total_steps or "?"), files
        info = self.ctx.runs.find(job.run_id, user)
        line = fix.comparison(before, self.after(job.run_id, corrected), f"run:{job.run_id}",
                              info.metrics.get("accuracy"), source.previous_accuracy)
        counts = text("corrections.counts", lang, corrected=corrected.relabelled,
                      excluded=len(corrected.excluded_texts))
        yield job.run_id, f"{say(line, lang)}\n\n{counts}", files
