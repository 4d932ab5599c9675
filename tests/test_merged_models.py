"""Merged models the Fine-tune tab writes into the models folder show in the model pickers (owner's only)."""

from __future__ import annotations

import json

from pipelines.models.merged import merged_models


def test_merged_folders_and_gguf_files_are_offered_in_the_pickers(ctx) -> None:
    models = ctx.config.models_dir
    models.mkdir(parents=True, exist_ok=True)
    folder = models / "run-a-merged"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}), encoding="utf-8")
    classifier = models / "run-b-merged"
    classifier.mkdir()
    (classifier / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}),
                                            encoding="utf-8")
    (models / "run-c-merged.gguf").write_bytes(b"GGUF")
    (models / ".run-d-merged.gguf.tmp").write_bytes(b"GGUF")  # an export still being written
    (models / "notes-merged").mkdir()  # no config.json: not a model

    found = {m.name: (m.kind, m.engine) for m in merged_models(models, ctx.runs)}
    assert found == {"run-a-merged": ("causal-lm", "transformers"), "run-b-merged": ("seq-cls", "transformers"),
                     "run-c-merged.gguf": ("causal-lm", "llama.cpp")}
    chat = dict((ref, str(label)) for label, ref in ctx.model_choices(("causal-lm",)))
    assert chat[str(folder)] == "run-a-merged (merged, transformers)"
    assert chat[str(models / "run-c-merged.gguf")] == "run-c-merged.gguf (merged, llama.cpp)"
    assert str(classifier) not in chat
    assert merged_models(models, ctx.runs, user="alice") == []  # with logins: runs alice does not own
