"""A remote model (the real llama.cpp server serving the embedded SmolLM2 GGUF) evaluated on generation beside
the embedded local model: text metrics for both, reference perplexity only for the local one, with a note."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from components.evaluate_handlers import EvaluateHandlers, pairs_frame, summary_frame
from pipelines.engines import Backends, EnginesConfig, use_backends
from tests.engines_server import LLAMA_CPP
from tests.engines_server import llama_server as llama_server_at

REMOTE = "remote:llama/smol"
LOCAL = "smollm2-135m-instruct"
ROWS = [
    ("What is the capital of France? Answer in one word.", "Paris"),
    ("What colour is the sky on a clear day? Answer in one word.", "Blue"),
    ("How many legs does a spider have? Answer with a number.", "8"),
    ("Name the largest planet in the solar system.", "Jupiter"),
    ("What do bees make?", "Honey"),
    ("Translate 'bonjour' into English.", "Hello"),
]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """``python -m llama_cpp.server`` on the embedded SmolLM2 GGUF, one thread, started once for the module."""
    if not LLAMA_CPP:
        pytest.skip("llama_cpp (llama-cpp-python[server]) is not installed in this venv")
    with llama_server_at(tmp_path_factory.mktemp("llama"), "--n_ctx", "1024", "--n_threads", "1",
                         "--model_alias", "smol") as url:
        yield url


def test_remote_and_local_models_side_by_side_on_generation(ctx, llama_server: str, upload_dir: Path) -> None:
    registry = use_backends(ctx, Backends(EnginesConfig(backends=f"llama={llama_server}", retries=1,
                                                        backoff_s=0.05)))
    assert registry.probe("llama").ok
    file = upload_dir / "qa.csv"
    with open(file, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([("prompt", "reference"), *ROWS])

    handlers = EvaluateHandlers(ctx)
    *_, last = handlers.evaluate(str(file), "", "", [REMOTE, LOCAL], "auto", 200, 8, 200, 0, None, None)
    status, summary, pairs, report, changed, files, result = last
    assert report["task"] == "generation" and report["rows"] == 6 and report["models"] == [REMOTE, LOCAL]
    text_metrics = ("rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "token_f1", "mean_length")
    for model in (REMOTE, LOCAL):
        for name in text_metrics:
            value = report["metrics"][model][name]
            assert value["value"] is not None and value["low"] <= value["value"] <= value["high"], (model, name)
        assert report["metrics"][model]["mean_length"]["value"] > 0  # both answered every row
    assert report["metrics"][REMOTE]["reference_perplexity"] == {"value": None}  # not a zero, not a crash
    assert math.isfinite(report["metrics"][LOCAL]["reference_perplexity"]["value"])
    assert report["metrics"][LOCAL]["reference_perplexity"]["value"] > 1
    assert report["pairs"][0]["p_values"]["reference_perplexity"] is None
    assert 0 < report["pairs"][0]["p_values"]["rougeL"] <= 1
    assert report["detail"][REMOTE]["unavailable"] == ["reference_perplexity"]
    assert f"Reference perplexity is not available for {REMOTE}" in status and "6 of 6" in status

    shown = summary_frame(result, "en").set_index("Model")
    assert shown.loc[REMOTE, "Reference perplexity"] == "—" and shown.loc[LOCAL, "Reference perplexity"] != "—"
    assert pairs_frame(result, "en")["Reference perplexity"].tolist() == ["—"]
    with open(files[0], encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and all(r[f"{REMOTE} | output"].strip() for r in rows)
    assert all(r[f"{LOCAL} | output"].strip() for r in rows)
