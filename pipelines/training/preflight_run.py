"""The pre-flight check of one planned run: a table and a ``finetune`` spec in, a :class:`PreflightReport` out
(analysis always; the measured estimate on request, never while another run trains, since it would measure a
shared, busy machine)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pipelines.messages import Msg
from pipelines.training.data import guess_mapping, prepare, split
from pipelines.training.preflight import Preflight, PreflightConfig, PreflightReport, load_tokenizer
from pipelines.training.preflight_probe import Prober
from pipelines.training.spec import JobSpec

if TYPE_CHECKING:
    from pipelines.config import AppConfig
    from pipelines.tables import Table


class PreflightRun:
    """Runs the pre-flight check for the app (``config``: model locations; ``busy``: whether a run trains now)."""

    def __init__(self, config: AppConfig, busy: Callable[[], bool] | None = None, checks: PreflightConfig | None = None,
                 prober: Prober | None = None) -> None:
        self.config, self.busy, self.checks = config, busy, checks
        self.prober = prober or Prober()

    def check(self, table: Table, spec: JobSpec, estimate: bool = False) -> PreflightReport:
        """Analyse the data of ``spec`` (columns guessed when left out); with ``estimate``, probe the run too."""
        from pipelines.training.job import base_location

        columns = spec.columns if any(spec.columns.to_dict().values()) else guess_mapping(table.columns, spec.task)
        data = prepare(table, spec.task, columns)
        location = base_location(spec.base_model, self.config)
        report = Preflight(self.checks).analyse(data, spec.settings, load_tokenizer(location), spec.base_model)
        if not estimate:
            return report
        if self.busy is not None and self.busy():
            report.estimate = {"skipped": True, "notes": [_note(Msg.of("preflight.busy_training"))]}
            return report
        from pipelines.training.balance import oversample
        from pipelines.training.hardware import plan

        train_rows = report.train_rows
        if spec.settings.oversample and data.task == "classification":
            train_idx, _ = split(data, spec.settings.val_split, spec.settings.seed, spec.settings.max_val_rows)
            train_rows = len(oversample(train_idx, data.targets, spec.settings.seed))
        probe = self.prober.measure(data, spec.settings, location, report.lengths, plan(spec.hardware),
                                    self.config.allow_pickle_weights, cancel=self.busy)
        if probe is None:  # a run started meanwhile: it has the machine
            report.estimate = {"skipped": True, "notes": [_note(Msg.of("preflight.busy_training"))]}
            return report
        found = self.prober.estimate(probe, spec.settings, train_rows, report.val_rows, report.suggested_max_length)
        report.estimate = found.to_dict()
        return report


def _note(msg: Msg) -> dict:
    return {"key": msg.key, "params": {k: str(v) for k, v in msg.params.items()}, "text": str(msg)}
