"""Domain adaptation ("continue pre-training on domain text"): plain-text uploads split into paragraphs, chunk
packing and masking, a causal-LM run that lowers held-out domain perplexity, a masked-LM run on the embedded MiniLM
that lowers the masked-token loss, and adapters that load in the other tabs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipelines.tables import Table
from pipelines.training.data import ColumnMapping, prepare
from pipelines.training.domain import (
    GENERAL_TEXT,
    HEAD_FILE,
    domain_task,
    general_examples,
    mask_rows,
    pack,
    paragraphs,
    read_plain_text,
)
from pipelines.training.enums import TrainTask
from pipelines.training.job import TrainingJob
from pipelines.training.settings import TrainSettings, preset
from pipelines.training.spec import JobSpec

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
MANUAL = EXAMPLES / "domain_manual.txt"


def manual_table(repeats: int = 4) -> Table:
    """The shipped manual (12 paragraphs repeated 4 times), the first ``repeats`` copies, as a text column."""
    paras = paragraphs(MANUAL.read_text(encoding="utf-8"))
    return Table(pd.DataFrame({"text": paras[: 12 * repeats]}), "utf-8", ",")


def run(ctx, data, settings: TrainSettings, base: str) -> TrainingJob:
    slots = getattr(ctx, "training_slots", None) or ctx.training_lock
    job = TrainingJob(ctx.config, slots, data, settings, base, name="domain", num_threads=2).start()
    job.wait(timeout=900)
    state = job.snapshot()
    assert state.status == "complete", state.error
    return job


def test_examples_ship_domain_and_general_text() -> None:
    paras = paragraphs(MANUAL.read_text(encoding="utf-8"))
    assert len(paras) == 48 and len(set(paras)) == 12  # a repeated product manual
    general = general_examples()
    assert GENERAL_TEXT.is_file() and len(general) >= 6
    assert not {p["text"] for p in general} & set(paras)


def test_plain_text_upload_is_split_into_paragraph_rows(upload_dir) -> None:
    path = upload_dir / "notes.md"
    path.write_text("# Title\n\nFirst   paragraph\nstill first.\n\n\n\nSecond one.\n", encoding="utf-8")
    table = read_plain_text(str(path), 2**20, 100)
    assert table.columns == ["text"]
    assert list(table.frame["text"]) == ["# Title", "First paragraph\nstill first.", "Second one."]
    data = prepare(table, "domain", ColumnMapping(text="text"))
    assert data.task == TrainTask.DOMAIN and [e["text"] for e in data.examples][1] == "First paragraph\nstill first."


def test_a_long_cell_becomes_paragraph_examples() -> None:
    table = Table(pd.DataFrame({"text": ["one\n\ntwo\n\nthree", "", "four"]}), "utf-8", ",")
    data = prepare(table, "domain", ColumnMapping(text="text"))
    assert [e["text"] for e in data.examples] == ["one", "two", "three", "four"]
    assert data.report.dropped == {"empty_text": 1}


def test_domain_request_picks_the_objective_from_the_base_model(tiny_root) -> None:
    assert JobSpec.from_json({"task": "domain"}).task == TrainTask.DOMAIN  # SmolLM2, a decoder
    assert JobSpec.from_json({"task": "domain", "base_model": "minilm-l6"}).task == TrainTask.DOMAIN_MLM
    assert domain_task(TrainTask.DOMAIN, str(tiny_root / "tiny-bert")) == TrainTask.DOMAIN_MLM
    assert domain_task(TrainTask.DOMAIN, str(tiny_root / "tiny-llama")) == TrainTask.DOMAIN
    assert JobSpec.from_json({"task": "domain", "base_model": "minilm-l6"}).settings.max_length == 128


def test_packing_keeps_every_token_and_masking_is_seeded(tiny_root) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_root / "tiny-bert"))
    examples = [{"text": p} for p in paragraphs(MANUAL.read_text(encoding="utf-8"))[:12]]
    rows, cut = pack(tok, examples, 48, mlm=True)
    assert all(len(r["input_ids"]) <= 48 for r in rows) and cut > 0  # long paragraphs are cut, never dropped
    body = [t for r in rows for t in r["input_ids"] if t not in (tok.cls_token_id, tok.sep_token_id)]
    assert body == [t for e in examples for t in tok(e["text"], add_special_tokens=False)["input_ids"]]
    first, again = mask_rows(rows, tok, 0.15, 7), mask_rows(rows, tok, 0.15, 7)
    assert first == again and first != mask_rows(rows, tok, 0.15, 8)
    masked = [(r, i) for r in first for i, label in enumerate(r["labels"]) if label != -100]
    assert 0.08 < len(masked) / len(body) < 0.25
    assert all(r["labels"][i] not in (tok.cls_token_id, tok.sep_token_id) for r, i in masked)
    assert sum(r["input_ids"][i] == tok.mask_token_id for r, i in masked) / len(masked) > 0.6


def test_causal_lm_run_on_the_manual_lowers_held_out_perplexity_and_loads_in_generate(ctx, tiny_root) -> None:
    data = prepare(manual_table(3), "domain", ColumnMapping(text="text"))
    settings = TrainSettings.from_dict({"batch_size": 4, "epochs": 2, "max_length": 64, "learning_rate": 0.01,
                                        "patience": 0, "eval_every": 100, "sample_tokens": 4},
                                       base=preset("quick", "domain"))
    job = run(ctx, data, settings, str(tiny_root / "tiny-llama"))
    info = ctx.runs.get(job.run_id)
    record = info.metrics["domain"]
    assert record["measure"] == "perplexity" and record["chunks"]["held_out"] >= 1
    assert record["after"]["held_out"]["perplexity"] < record["before"]["held_out"]["perplexity"]
    assert {"held_out", "general"} <= set(record["before"]) and record["chunks"]["general"] >= 1
    assert info.kind == "causal-lm" and info.task == "domain"
    from pipelines.generation.settings import GenerationSettings

    loaded = ctx.manager.load(info.reference)
    assert loaded.kind == "causal-lm" and any("lora_" in n for n, _ in loaded.model.named_parameters())
    reply = ctx.generation.generate(info.reference, "The Lumora K7",  # what the Generate tab runs for run:<id>
                                    GenerationSettings(max_new_tokens=4, mode="completion", engine="transformers"))
    assert reply.tokens and len(reply.tokens) <= 4


def test_masked_lm_run_on_minilm_lowers_masked_token_loss_and_loads_in_attention(ctx) -> None:
    data = prepare(manual_table(2), "domain-mlm", ColumnMapping(text="text"))
    settings = TrainSettings.from_dict({"batch_size": 8, "epochs": 1, "max_length": 64, "learning_rate": 0.005,
                                        "patience": 0, "eval_every": 100, "probes": ["Descale the ___ once a month."]},
                                       base=preset("quick", "domain-mlm"))
    job = run(ctx, data, settings, "minilm-l6")
    info = ctx.runs.get(job.run_id)
    record = info.metrics["domain"]
    assert record["measure"] == "masked_loss"
    assert record["after"]["held_out"]["loss"] < record["before"]["held_out"]["loss"] - 0.5
    assert info.kind == "encoder" and info.task == "domain-mlm" and (info.path / HEAD_FILE).is_file()
    assert info.metrics["probes"] and info.metrics["probes"][-1]["answers"][0]["probs"]
    # The adapter is the encoder's: it loads on the plain encoder (what the Attention tab loads) with every
    # trained LoRA weight in place.
    from safetensors.torch import load_file

    adapter = load_file(str(info.adapter_dir / "adapter_model.safetensors"))
    loaded = ctx.manager.load(info.reference)
    assert loaded.kind == "encoder"
    params = dict(loaded.model.named_parameters())
    lora_b = [n for n in adapter if "lora_B" in n]
    assert lora_b and all(torch.count_nonzero(adapter[n]) for n in lora_b)
    for name, tensor in adapter.items():
        live = name.replace(".weight", ".default.weight")
        assert torch.allclose(params["base_model.model." + live.removeprefix("base_model.model.")], tensor), name
    from pipelines.attention.extract import load_for_attention

    assert load_for_attention(ctx.manager, info.reference).kind == "encoder"  # the Attention tab's loader


def test_domain_results_view_shows_both_text_sets() -> None:
    from pipelines.training.view import results_view

    metrics = {"val_loss": 2.0, "step": 4, "epoch": 1.0, "perplexity": 7.39,
               "domain": {"measure": "perplexity", "chunks": {"held_out": 3, "general": 8},
                          "before": {"held_out": {"loss": 3.0, "perplexity": 20.0},
                                     "general": {"loss": 3.0, "perplexity": 20.0}},
                          "after": {"held_out": {"loss": 2.0, "perplexity": 10.0},
                                    "general": {"loss": 3.1, "perplexity": 22.0}}}}
    md, _fig, rows, headers = results_view("domain", metrics, True, "en")
    assert "held-out" in md and headers == ["text", "before", "after", "change"]
    assert rows == [["held-out domain text", "20.000", "10.000", "-50.0%"],
                    ["general English sample", "20.000", "22.000", "+10.0%"]]
    zh_md, _fig, zh_rows, _ = results_view("domain", metrics, True, "zh-CN")
    assert zh_rows[0][0] == "留出的领域文本" and "领域适应" in zh_md


@pytest.fixture
def manual_upload(upload_dir) -> str:
    path = upload_dir / "manual.txt"
    shutil.copyfile(MANUAL, path)
    return str(path)


def test_finetune_handlers_read_a_txt_upload_as_domain_text(ctx, manual_upload) -> None:
    from components.finetune_handlers import FinetuneHandlers

    got = FinetuneHandlers(ctx).upload(manual_upload, "domain")
    assert got.columns == ["text"] and got.picks[0] == "text"
    assert "48" in got.report
    spec = json.loads(FinetuneHandlers.collect("domain", "minilm-l6", "", "quick", "auto", False, "text", "", "",
                                               "", *FinetuneHandlers.preset_values("quick", "domain")))
    assert JobSpec.from_json(spec).task == TrainTask.DOMAIN_MLM
