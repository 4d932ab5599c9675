"""Compare runs (loss curves from the event logs, settings side by side, differences marked) and named settings
presets saved under the data folder."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from components.finetune_compare_handlers import CompareHandlers
from components.finetune_presets_handlers import PresetHandlers
from pipelines.errors import InputError, ModelLoadError
from pipelines.tables import Table
from pipelines.training.compare import compare_runs, parse_ids
from pipelines.training.data import ColumnMapping, prepare
from pipelines.training.job import TrainingJob
from pipelines.training.settings import TrainSettings, preset

POS = ["great wonderful film", "I loved it", "brilliant and fun", "a delightful story", "superb acting",
       "excellent happy movie", "fantastic and great", "amazing wonderful plot"]
NEG = ["terrible boring film", "I hated it", "awful and dull", "a dreadful story", "horrible acting",
       "worst sad movie", "stupid and awful", "boring terrible plot"]


def train(ctx, base: str, **extra) -> str:
    frame = pd.DataFrame([{"text": t, "label": "pos"} for t in POS] + [{"text": t, "label": "neg"} for t in NEG])
    data = prepare(Table(frame, "utf-8", ","), "classification", ColumnMapping("text", "label"))
    settings = TrainSettings.from_dict({"batch_size": 4, "epochs": 2, "max_length": 16, "patience": 0, **extra},
                                       base=preset("quick"))
    slots = ctx.training_slots if hasattr(ctx, "training_slots") else ctx.training_lock
    job = TrainingJob(ctx.config, slots, data, settings, base, name=f"lr {settings.learning_rate}", num_threads=2)
    job.start()
    assert job.wait(timeout=600) and job.snapshot().status == "complete"
    return job.run_id


@pytest.fixture
def two_runs(ctx, tiny_root) -> list[str]:
    base = str(tiny_root / "tiny-bert")
    return [train(ctx, base, learning_rate=1e-3), train(ctx, base, learning_rate=5e-3)]


def test_compare_two_runs_overlays_curves_and_marks_differing_settings(ctx, two_runs) -> None:
    found = compare_runs(ctx.runs, two_runs)
    assert [r["id"] for r in found.runs] == two_runs
    for curve in found.curves:
        assert [p[0] for p in curve["train"]] == [1, 2, 3, 4, 5, 6, 7, 8]  # 12 train rows, batch 4, 2 epochs
        assert curve["val"][0][0] == 0 and all(p[1] > 0 for p in curve["val"])
    rows = {r["name"]: r for r in found.settings}
    assert rows["learning_rate"]["values"] == [1e-3, 5e-3] and rows["learning_rate"]["differs"]
    assert not rows["batch_size"]["differs"] and not rows["base_model"]["differs"]
    assert "learning_rate" in found.differences and "created" not in found.differences
    figure, table = CompareHandlers(ctx).show(",".join(two_runs))
    assert len(figure.data) == 4  # train and validation curve per run
    assert table.count('data-differs="1"') == len(found.differences) >= 1
    assert json.loads(json.dumps(CompareHandlers(ctx).api(json.dumps(two_runs))))["differences"] == found.differences


def test_compare_needs_two_to_five_known_runs(ctx, two_runs) -> None:
    with pytest.raises(InputError) as info:
        compare_runs(ctx.runs, two_runs[:1])
    assert info.value.key == "compare_runs.pick_runs" and "2 to 5" in info.value.render("en")
    with pytest.raises(InputError):
        compare_runs(ctx.runs, [f"r{i}" for i in range(6)])
    with pytest.raises(ModelLoadError):
        compare_runs(ctx.runs, [two_runs[0], "no-such-run"])


def test_run_ids_parse_from_lists_json_and_text() -> None:
    assert parse_ids('["a", "b", "a"]') == ["a", "b"]
    assert parse_ids("a, b  c") == ["a", "b", "c"]
    assert parse_ids(["x", " y "]) == ["x", "y"] and parse_ids(None) == []


def test_presets_save_and_load_the_settings(ctx) -> None:
    handlers = PresetHandlers(ctx)
    spec = json.dumps({"task": "classification", "base_model": "minilm-l6",
                       "settings": {**preset("balanced").to_dict(), "learning_rate": 0.002, "oversample": True,
                                    "target_modules": ["query", "value"]}})
    status, names, saved = handlers.save("my favourite", spec)
    assert names == ["my favourite"] == [saved] and "my favourite" in status
    assert (ctx.config.data_dir / "presets" / "my favourite.json").is_file()
    loaded = handlers.load("my favourite")
    assert loaded["numbers"][3] == 0.002 and loaded["oversample"] and loaded["targets"] == "query, value"
    with pytest.raises(InputError) as info:
        handlers.save("../escape", spec)
    assert info.value.key == "presets.bad_name"
    with pytest.raises(InputError) as info:
        handlers.load("missing")
    assert info.value.key == "presets.not_found"
    with pytest.raises(InputError):
        handlers.save("  ", spec)
