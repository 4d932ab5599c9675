"""Live probes: answered by the training child at every evaluation, folded into the job state, kept in the run,
shown as a table of probe x evaluation with the previous answer beside (handlers and the served tab)."""

from __future__ import annotations

import json

import pytest

from components.finetune_probes_handlers import ProbeHandlers
from pipelines.errors import InputError
from pipelines.training.data import ColumnMapping, prepare
from pipelines.training.job import TrainingJob
from pipelines.training.probes import answer_text, fold, probe_rows
from pipelines.training.progress import JobState, apply
from pipelines.training.settings import TrainSettings, preset
from pipelines.training.spec import JobSpec
from tests.test_training import lm_table, sentiment_table


def run(ctx, data, settings: TrainSettings, base: str) -> TrainingJob:
    slots = getattr(ctx, "training_slots", None) or ctx.training_lock
    job = TrainingJob(ctx.config, slots, data, settings, base, name="probes", num_threads=2).start()
    job.wait(timeout=600)
    state = job.snapshot()
    assert state.status == "complete", state.error
    return job


def test_probes_come_from_the_spec_one_per_line_and_at_most_five() -> None:
    spec = JobSpec.from_json({"probes": ["great film", "  ", "awful film "]})
    assert spec.settings.probes == ["great film", "awful film"]
    assert JobSpec.from_json({"settings": {"probes": "a\nb\n\nc"}}).settings.probes == ["a", "b", "c"]
    with pytest.raises(InputError, match="at most 5 probes"):
        JobSpec.from_json({"probes": [str(i) for i in range(6)]})
    merged = json.loads(ProbeHandlers.merge(json.dumps({"task": "classification"}), "one\n\ntwo\n", False))
    assert merged["probes"] == ["one", "two"] and "settings" not in merged
    assert JobSpec.from_json(merged).settings.probes == ["one", "two"]
    domain = json.loads(ProbeHandlers.merge(json.dumps({"task": "domain", "settings": {"seed": 3}}), "", True))
    assert domain["settings"] == {"seed": 3, "train_embeddings": True} and "probes" not in domain
    with pytest.raises(InputError):
        ProbeHandlers.merge("{}", "\n".join("abcdef"), False)


def test_table_has_one_row_per_probe_per_evaluation_with_the_previous_answer() -> None:
    state = JobState("r", "classification")
    for step, (a, b) in enumerate([(0.5, 0.5), (0.7, 0.3), (0.9, 0.1)]):
        apply(state, {"event": "probes", "step": step * 2, "answers": [
            {"probe": "nice", "answer": "pos", "probs": {"pos": a, "neg": b}},
            {"probe": "bad", "answer": "neg", "probs": {"pos": b, "neg": a}}]})
    rows = probe_rows(state.probes)
    assert len(rows) == 6 and [r[0] for r in rows] == [4, 4, 2, 2, 0, 0]  # newest evaluation first
    assert rows[0] == [4, "nice", "pos 0.9 · neg 0.1", "pos 0.7 · neg 0.3"]
    assert rows[-1][3] == ""  # the first evaluation has no previous answer
    apply(state, {"event": "resumed", "step": 2})  # a resumed run drops the answers after its checkpoint
    assert [h["step"] for h in state.probes] == [0, 2]
    assert [h["step"] for h in fold(state.probes, 2, [])] == [0, 2] and fold(state.probes, 2, [])[1]["answers"] == []
    assert answer_text({"probe": "p", "answer": "Blue."}) == "Blue."


def test_classifier_probe_probabilities_change_between_first_and_last_evaluation(ctx, tiny_root) -> None:
    data = prepare(sentiment_table(20), "classification", ColumnMapping("text", "label"))
    settings = TrainSettings.from_dict({"batch_size": 4, "epochs": 2, "max_length": 32, "patience": 0,
                                        "learning_rate": 0.01, "probes": ["a wonderful great film", "awful dull"]},
                                       base=preset("quick"))
    job = run(ctx, data, settings, str(tiny_root / "tiny-bert"))
    state = job.snapshot()
    assert len(state.probes) == len(state.val_curve) >= 3  # every evaluation, the one before training included
    first, last = state.probes[0]["answers"], state.probes[-1]["answers"]
    assert [a["probe"] for a in last] == ["a wonderful great film", "awful dull"]
    for before, after in zip(first, last, strict=True):
        assert set(after["probs"]) == {"neg", "pos"} and sum(after["probs"].values()) == pytest.approx(1, abs=1e-3)
        assert abs(after["probs"]["pos"] - before["probs"]["pos"]) > 1e-3
    assert last[0]["probs"]["pos"] > first[0]["probs"]["pos"]  # the positive text moves towards "pos"
    kept = ctx.runs.get(job.run_id).metrics["probes"]
    assert kept == state.probes  # the same table lands in the run
    rows, headers = ProbeHandlers(ctx).of_run(job.run_id, "en")
    assert headers == ["step", "probe", "answer now", "previous answer"] and len(rows) == 2 * len(kept)


def test_causal_lm_probe_table_has_one_row_per_probe_per_evaluation(ctx, tiny_root) -> None:
    data = prepare(lm_table(16), "causal-lm", ColumnMapping(prompt="prompt", response="response"))
    settings = TrainSettings.from_dict({"batch_size": 4, "epochs": 2, "max_length": 32, "patience": 0,
                                        "sample_tokens": 4, "probe_tokens": 5, "learning_rate": 0.01,
                                        "probes": ["Name the colour number 3", "Name the colour number 99"]},
                                       base=preset("quick", "causal-lm"))
    job = run(ctx, data, settings, str(tiny_root / "tiny-llama"))
    state = job.snapshot()
    evaluations = [step for step, _ in state.val_curve]
    assert [h["step"] for h in state.probes] == evaluations
    rows = probe_rows(state.probes)
    assert len(rows) == 2 * len(evaluations)
    assert sorted((r[0], r[1]) for r in rows) == sorted(
        (step, p) for step in evaluations for p in ("Name the colour number 3", "Name the colour number 99"))
    assert all(isinstance(a["answer"], str) and "probs" not in a for h in state.probes for a in h["answers"])
    assert ctx.runs.get(job.run_id).metrics["probes"] == state.probes
    live_rows, _ = ProbeHandlers(ctx).live("nobody", "en")
    assert live_rows == []  # another session sees no table


def test_report_sections_hold_the_probe_and_domain_tables() -> None:
    from pipelines.evaluation.report_blocks import Table
    from pipelines.training.probes import report_blocks

    assert report_blocks({"accuracy": 0.9}) == []
    metrics = {"probes": [{"step": 0, "answers": [{"probe": "p", "answer": "a"}]},
                          {"step": 5, "answers": [{"probe": "p", "answer": "b"}]}],
               "domain": {"measure": "masked_loss", "chunks": {"held_out": 2, "general": 8},
                          "before": {"held_out": {"loss": 9.0, "perplexity": 8103.1}},
                          "after": {"held_out": {"loss": 6.0, "perplexity": 403.4}}}}
    tables = [b for b in report_blocks(metrics, "zh-CN") if isinstance(b, Table)]
    assert tables[0].rows == [["留出的领域文本", "9.000", "6.000", "-33.3%"]]
    assert tables[1].rows == [["5", "p", "b", "a"], ["0", "p", "a", ""]] and tables[1].head[0] == "步数"
