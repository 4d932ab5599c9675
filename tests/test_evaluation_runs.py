"""A fine-tuned MiniLM run against its zero-shot base on held-out reviews, and the run's HTML report."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd

from components.evaluate_handlers import EvaluateHandlers
from pipelines.tables import Table
from pipelines.training.data import ColumnMapping, prepare
from pipelines.training.job import TrainingJob
from pipelines.training.settings import TrainSettings, preset
from tests.test_training import NEG, POS

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def test_fine_tuned_minilm_beats_zero_shot_base_and_the_report_shows_it(ctx, upload_dir: Path) -> None:
    rows = [{"text": t, "label": "positive"} for t in POS] + [{"text": t, "label": "negative"} for t in NEG]
    data = prepare(Table(pd.DataFrame(rows).astype(str), "utf-8", ","), "classification",
                   ColumnMapping("text", "label"))
    settings = TrainSettings.from_dict({"epochs": 3, "batch_size": 8, "learning_rate": 5e-3, "max_length": 24,
                                        "val_split": 0.2, "seed": 0}, base=preset("quick"))
    job = TrainingJob(ctx.config, ctx.training_slots, data, settings, "minilm-l6", name="sentiment",
                      num_threads=2).start()
    job.wait(timeout=900)
    assert job.snapshot().status == "complete", job.snapshot().error
    run = f"run:{job.run_id}"

    held_out = shutil.copy(EXAMPLES / "sentiment.csv", upload_dir / "sentiment.csv")  # real reviews, never trained on
    *_, last = EvaluateHandlers(ctx).evaluate(str(held_out), "text", "label", ["minilm-l6", run], "classification",
                                              200, 8, 500, 0, None, None)
    status, summary, pairs, report, changed, files, result = last
    tuned = report["metrics"][run]["accuracy"]["value"]
    zero_shot = report["metrics"]["minilm-l6"]["accuracy"]["value"]
    print(f"fine-tuned {tuned}, zero-shot {zero_shot}, p {report['pairs'][0]['p_values']['accuracy']}")
    assert tuned > zero_shot
    assert report["metrics"][run]["macro_f1"]["value"] > report["metrics"]["minilm-l6"]["macro_f1"]["value"]
    names = [Path(f).name for f in files]  # the run's report (with this evaluation) downloads beside the predictions
    assert names == ["predictions.csv", "evaluation.json", f"{job.run_id}-report.html", f"{job.run_id}-report.md"]
    card = Path(files[3]).read_text(encoding="utf-8")
    assert card.startswith("# Fine-tuning run: sentiment\n") and "classification, 20 rows" in card
    assert f"| Accuracy | {tuned} [" in card and "## Loss curves" in card and "| learning_rate | 0.005 |" in card

    from components.finetune_handlers import FinetuneHandlers

    page = Path(FinetuneHandlers(ctx).run_report(job.run_id, "en")).read_text(encoding="utf-8")
    assert "Fine-tuning run: sentiment" in page
    assert "learning_rate" in page and "Loss curves" in page and "Environment" in page and "transformers" in page
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js inlined: the page opens offline
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert "classification, 20 rows" in page and str(tuned) in page  # the evaluation above is listed
    zh = Path(FinetuneHandlers(ctx).run_report(job.run_id, "zh-CN")).read_text(encoding="utf-8")
    assert "微调运行" in zh and "损失曲线" in zh
