"""The README's API table lists exactly the app's public endpoints, and each documented endpoint answers a small
valid request with a sensible result (tiny local models where possible, embedded MiniLM/spaCy otherwise)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SENTIMENT = ROOT / "assets" / "examples" / "sentiment.csv"
TEMPLATE = "This text is about {}."
ROW = re.compile(r"^\| `(/[a-z_]+)` \| ([^|]+) \|")


def documented_endpoints() -> dict[str, str]:
    """``{endpoint: tab}`` from the README's API table."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## API"):]
    section = section[: section.index("\n## ", 4)]
    return {m.group(1): m.group(2).strip() for line in section.splitlines() if (m := ROW.match(line))}


@pytest.fixture(scope="module")
def client(app_server) -> Client:
    return Client(app_server["url"], verbose=False)


def test_readme_lists_exactly_the_public_endpoints(client: Client) -> None:
    documented = documented_endpoints()
    api = client.view_api(return_format="dict", print_info=False)
    public = set(api["named_endpoints"])
    assert not api["unnamed_endpoints"], "every public event has an api_name"
    assert set(documented) == public, (
        f"undocumented: {sorted(public - set(documented))}; documented but missing: {sorted(set(documented) - public)}"
    )
    assert {"Generate", "Models", "Attention", "Fine-tune", "Classify", "Summarize", "Extract", "Evaluate"} == set(
        documented.values())


def test_generate_endpoints(client: Client, tiny_root: Path) -> None:
    model, settings = str(tiny_root / "tiny-llama"), {"max_new_tokens": 6, "mode": "completion", "seed": 1}
    assert isinstance(client.predict("Hello there", model, settings, "", api_name="/generate"), str)
    details = client.predict("Hello there", model, settings, "", api_name="/generate_details")
    assert 1 <= len(details["tokens"]) <= 6 and details["stats"]["new_tokens"] == len(details["tokens"])
    assert all(0 <= tok["prob"] <= 1 for tok in details["tokens"])
    streamed = client.predict("Hello there", model, settings, "", api_name="/generate_stream")
    assert isinstance(streamed, str)
    top = client.predict("Hello there", model, settings, 5, api_name="/next_tokens")
    assert len(top) == 5 and top[0]["prob"] >= top[-1]["prob"]


def test_models_endpoints(client: Client, tiny_root: Path) -> None:
    ref = str(tiny_root / "tiny-bert")
    status, loaded, _ = client.predict(ref, "encoder", "auto", api_name="/load_model")
    assert "tiny-bert" in status and any("tiny-bert" in str(row) for row in loaded["data"])
    status, _ = client.predict(ref, api_name="/unload_model")
    assert "1" in status


def test_attention_endpoints(client: Client, tiny_root: Path) -> None:
    ref = str(tiny_root / "tiny-bert")
    data = client.predict(ref, "The cat sat on the mat.", "", 0, -1, 32, api_name="/attention")
    assert data["weights_shape"][0] == "head" and len(data["weights"]) == data["num_heads"]
    views = client.predict(ref, "The cat sat on the mat.", "", 32, 0, 0, api_name="/attention_views")
    assert "cat" in json.dumps(views[0]) or "layers" in views[0]
    summary, *_ = client.predict(ref, ref, "The cat sat.", "", 32, 0, 0, api_name="/attention_compare")
    assert "0.0000" in summary  # a model compared with itself
    description, figure = client.predict(ref, api_name="/position_embeddings")
    assert description and figure


def test_finetune_endpoints(client: Client, tiny_root: Path) -> None:
    spec = json.dumps({"task": "classification", "base_model": str(tiny_root / "tiny-bert"), "name": "api docs",
                       "settings": {"epochs": 1, "batch_size": 8, "max_length": 16}})
    run_id, progress, *_ = client.predict(handle_file(str(SENTIMENT)), spec, api_name="/finetune")
    assert run_id and "complete" in progress
    record = next(r for r in client.predict(api_name="/runs") if r["id"] == run_id)
    assert record["status"] == "complete" and sorted(record["labels"]) == ["negative", "positive"]
    with zipfile.ZipFile(client.predict(run_id, api_name="/download_run")) as archive:
        assert any(name.endswith("adapter_config.json") for name in archive.namelist())
    assert "Merged into" in client.predict(run_id, api_name="/merge_run")
    status, *_ = client.predict(run_id, api_name="/delete_run")
    assert run_id in status and all(r["id"] != run_id for r in client.predict(api_name="/runs"))
    stopped = client.predict(api_name="/stop_finetune")  # nothing running: no change, no error
    assert len(stopped) == 9


def test_classify_endpoints(client: Client) -> None:
    label, _, scores, _ = client.predict("Add the butter and stir until the sauce thickens.", "embeddings",
                                         "minilm-l6", "sports, cooking, finance", TEMPLATE, api_name="/classify")
    assert label == "cooking" and abs(sum(scores.values()) - 1) < 1e-3
    status, preview, files, metrics, _ = client.predict(
        handle_file(str(SENTIMENT)), "text", "label", "embeddings", "minilm-l6", "positive, negative", TEMPLATE,
        api_name="/classify_csv")
    assert "20 of 20" in status and len(preview["data"]) == 20 and len(files) == 2 and "Accuracy" in metrics


def test_summarize_endpoints(client: Client) -> None:
    text = ("The reef is the largest coral system on Earth. It is home to thousands of species. "
            "Warm seas have bleached much of its coral. Governments pledged money to protect it.")
    summary, rouge, note = client.predict(text, "extractive", "minilm-l6", 2, 0, 128, text, api_name="/summarize")
    assert summary and summary in text.replace("  ", " ") and rouge["rouge1"] > 0 and note
    status, preview, files, metrics, _ = client.predict(
        handle_file(str(ROOT / "assets" / "examples" / "news_zh_gbk.csv")), "文本", "摘要", "extractive", "minilm-l6",
        1, 0, 128, api_name="/summarize_csv")
    assert "4 of 4" in status and len(files) == 2 and "ROUGE" in metrics


def test_extract_endpoints(client: Client, tiny_root: Path) -> None:
    text = "Tim Cook opened an Apple office in Berlin."
    highlight, table = client.predict(text, "spacy-en-sm", api_name="/extract_entities")
    assert "Berlin" in {row[0] for row in table["data"]}
    answer, _, details = client.predict("Where?", text, str(tiny_root / "tiny-llama"), api_name="/answer")
    assert isinstance(answer, str) and isinstance(details, dict)
    fields, notes, raw = client.predict(text, "person, city", str(tiny_root / "tiny-llama"),
                                        api_name="/extract_fields")
    assert [row[0] for row in fields["data"]] == ["person", "city"] and notes
    phrases = client.predict(text, 3, api_name="/extract_keyphrases")
    assert 1 <= len(phrases["data"]) <= 3
    status, preview, files, _, _ = client.predict(handle_file(str(SENTIMENT)), "text", "keyphrases", "", "", "",
                                                  api_name="/extract_csv")
    assert "20 of 20" in status and "keyphrases" in preview["headers"] and len(files) == 2
