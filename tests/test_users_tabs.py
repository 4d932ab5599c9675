"""Each user's data is theirs across the tabs (issue #20, second part): pickers, run panels, batch quotas, jobs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.errors import LimitError
from pipelines.quotas import JOB_USER, Quotas
from pipelines.training.store import tmp_folder
from tests.test_users import make_run, users_spec  # noqa: F401 - users_spec is a fixture used below

ALICE, BOB = SimpleNamespace(username="alice", session_hash="s-alice"), SimpleNamespace(username="bob",
                                                                                          session_hash="s-bob")


@pytest.fixture
def ctx(tmp_path: Path, users_spec: str, monkeypatch: pytest.MonkeyPatch) -> AppContext:  # noqa: F811
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    (tmp_path / "uploads").mkdir()
    ctx = AppContext.create(AppConfig(data_dir=tmp_path / "data", users=users_spec))
    make_run(ctx.config.runs_dir, "alice-cls", task="classification", created="2026-01-02T00:00:00")
    make_run(ctx.config.runs_dir, "bob-cls", task="classification")
    meta = ctx.config.runs_dir / "bob-cls" / "run.json"
    probes = [{"step": 1, "answers": [{"probe": "hi", "text": "yo"}]}]
    metrics = {"under_trained": True, "probes": probes}
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "metrics": metrics}))
    ctx.runs.set_owner("alice-cls", "alice")
    ctx.runs.set_owner("bob-cls", "bob")
    return ctx


def upload(ctx: AppContext, rows: int, name: str = "batch.csv") -> str:
    path = Path(ctx.config.data_dir).parent / "uploads" / name
    path.write_text("text,label\n" + "".join(f"row {i},pos\n" for i in range(rows)), encoding="utf-8")
    return str(path)


def _run_refs(choices: list) -> list[str]:
    return [ref for _, ref in choices if ref.startswith("run:")]


def test_classify_picker_and_notes_show_only_the_users_runs(ctx: AppContext) -> None:
    from components.classify_handlers import ClassifyHandlers

    handlers = ClassifyHandlers(ctx)
    assert handlers.default_model("finetuned", ALICE) == "run:alice-cls"
    assert handlers.default_model("finetuned", BOB) == "run:bob-cls"
    assert handlers.default_model("finetuned") == ""  # no request, login on: no one's runs
    assert [n.key for n in handlers.model_notes("run:bob-cls", "bob")] == ["classify.under_trained"]
    assert handlers.model_notes("run:bob-cls", "alice") == []  # alice learns nothing about bob's run


def test_focus_refresh_of_evaluate_and_extract_pickers_lists_the_users_runs(ctx: AppContext) -> None:
    from components.evaluate import build_evaluate_tab
    from components.extract import build_extract_tab

    with gr.Blocks() as demo:
        build_evaluate_tab(ctx)
        build_extract_tab(ctx)
    refreshes = [d.fn for d in demo.fns.values()
                 if any(event == "focus" for _, event in d.targets) and d.fn.__name__ == "refresh"]
    assert len(refreshes) >= 3  # evaluate's models, extract's entity and batch pickers (plus the generation ones)
    for refresh in refreshes:
        runs = _run_refs(refresh(BOB).constructor_args["choices"])
        assert "run:alice-cls" not in runs
    evaluate_refs = [_run_refs(r(BOB).constructor_args["choices"]) for r in refreshes]
    assert ["run:bob-cls"] in evaluate_refs  # the all-kinds pickers list bob's classifier


def test_results_and_probe_panels_refuse_another_users_run(ctx: AppContext) -> None:
    from components.finetune_probes_handlers import ProbeHandlers
    from components.finetune_results import FinetuneResultsHandlers

    results = FinetuneResultsHandlers(ctx)
    assert results.run_dir("run:bob-cls", "bob") == ctx.config.runs_dir / "bob-cls"
    assert results.run_dir("run:bob-cls", "alice") is None
    tmp_folder(ctx.config.runs_dir, "bob-live").mkdir()  # bob's run being trained now
    ctx.runs.set_owner("bob-live", "bob")
    assert results.run_dir("bob-live", "bob") is not None and results.run_dir("bob-live", "alice") is None
    probes = ProbeHandlers(ctx)
    assert probes.of_run("bob-cls", "en", "bob")[0] and not probes.of_run("bob-cls", "en", "alice")[0]


def test_batch_over_the_rows_quota_is_refused_with_one_keyed_sentence(ctx: AppContext) -> None:
    from components.classify_handlers import ClassifyHandlers

    ctx.__dict__["quotas"] = Quotas(batch_rows=3)
    file = upload(ctx, 5)
    with pytest.raises(LimitError) as info:
        next(ClassifyHandlers(ctx).classify_csv(file, "text", "", "embeddings", "minilm-l6", "pos, neg", "", ALICE))
    assert info.value.key == "users.quota.rows"
    sentence = str(info.value)
    assert sentence.count(".") == 1 and "5" in sentence and "3" in sentence and "LMW_QUOTA_ROWS" in sentence
    assert not ctx.sessions.running()  # nothing started
    assert len(ctx.read_upload(upload(ctx, 3, "small.csv"), "alice").frame) == 3  # at the limit: fine
    assert len(ctx.read_upload(file, None).frame) == 5  # no login: no quota
    assert len(ctx.read_upload(file, "alice", rows_used=2).frame) == 5  # an evaluation of 2 of its rows


def test_upload_quota_refuses_a_big_table_at_upload(ctx: AppContext) -> None:
    from components.evaluate_handlers import EvaluateHandlers

    ctx.__dict__["quotas"] = Quotas(upload_mb=1)
    big = Path(upload(ctx, 1, "big.csv"))
    big.write_text("text,label\n" + "a long row,pos\n" * 100_000, encoding="utf-8")
    with pytest.raises(LimitError, match="LMW_QUOTA_UPLOAD_MB"):
        EvaluateHandlers(ctx).columns(str(big), "bob")
    assert EvaluateHandlers(ctx).columns(upload(ctx, 4), "bob")[0] == ["text", "label"]


class _Running:
    finished = False

    def stop(self) -> None:
        self.finished = True


def test_jobs_quota_counts_batch_and_evaluation_jobs(ctx: AppContext) -> None:
    from components.finetune_handlers import FinetuneHandlers

    ctx.__dict__["quotas"] = quotas = Quotas(jobs=1)
    quotas.start_session_job(ctx.runs, ctx.sessions, "s-alice", "batch:summarize", "alice")
    assert ctx.sessions.get_value("s-alice", JOB_USER) == "alice"
    ctx.sessions.put("s-alice", "batch:summarize", _Running())
    with pytest.raises(LimitError) as info:  # a second job in another tab, or another browser of alice's
        quotas.start_session_job(ctx.runs, ctx.sessions, "s-alice-2", "evaluate", "alice")
    assert info.value.key == "users.quota.jobs" and "LMW_QUOTA_JOBS" in str(info.value)
    with pytest.raises(LimitError, match="LMW_QUOTA_JOBS"):
        FinetuneHandlers(ctx).check_quota("alice")  # training counts alice's batch too
    quotas.start_session_job(ctx.runs, ctx.sessions, "s-alice", "batch:summarize", "alice")  # replaces its own
    quotas.start_session_job(ctx.runs, ctx.sessions, "s-bob", "evaluate", "bob")  # bob's own count
    quotas.start_session_job(ctx.runs, ctx.sessions, "s-x", "evaluate", None)  # no login: nothing checked
    tmp_folder(ctx.config.runs_dir, "bob-live").mkdir()
    ctx.runs.set_owner("bob-live", "bob")
    with pytest.raises(LimitError, match="LMW_QUOTA_JOBS"):  # bob trains: no batch beside it at jobs=1
        quotas.start_session_job(ctx.runs, ctx.sessions, "s-bob", "batch:classify", "bob")
    ctx.sessions.stop("s-alice", "batch:summarize")
    quotas.start_session_job(ctx.runs, ctx.sessions, "s-alice-2", "evaluate", "alice")  # ended: room again
