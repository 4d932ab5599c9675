"""Model references: local folders only under the model roots, hub ids by pattern, pickle weights opt-in."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.errors import ModelLoadError
from pipelines.models import refs


@pytest.fixture
def roots(tmp_path: Path) -> tuple[AppConfig, Path, Path]:
    """A config whose only model root is ``root``; ``outside`` is a sibling folder with a valid model config."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    for folder in (root / "good", outside / "model"):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
        (folder / "model.safetensors").write_bytes(b"")
    config = AppConfig(data_dir=tmp_path / "data", models_dir=root)
    return config, root, outside


def refused(ref: str, config: AppConfig) -> str:
    with pytest.raises(ModelLoadError) as info:
        refs.resolve(ref, config)
    return str(info.value)


def test_folder_inside_a_root_resolves(roots):
    config, root, _ = roots
    ref = refs.resolve(str(root / "good"), config)
    assert (ref.source, ref.location) == ("local", str((root / "good").resolve()))


@pytest.mark.parametrize("suffix", ["good/../../outside/model", "../outside/model", "good/../../../../../../etc"])
def test_traversal_out_of_a_root(roots, suffix):
    config, root, _ = roots
    assert "outside the allowed model folders" in refused(f"{root}/{suffix}", config)


def test_relative_traversal_and_home(roots):
    config, _, _ = roots
    assert "outside the allowed model folders" in refused("../../etc", config)
    assert "outside the allowed model folders" in refused("~/", config)


def test_symlink_out_of_a_root(roots):
    config, root, outside = roots
    os.symlink(outside / "model", root / "link")
    assert "outside the allowed model folders" in refused(str(root / "link"), config)


def test_symlink_inside_a_root_is_fine(roots):
    config, root, _ = roots
    os.symlink(root / "good", root / "alias")
    assert refs.resolve(str(root / "alias"), config).location == str((root / "good").resolve())


def test_missing_paths_outside_a_root_look_like_existing_ones(roots):
    """No oracle: a missing file and an existing one outside the roots give the same sentence."""
    config, _, outside = roots
    existing = refused(str(outside / "model"), config).replace(str(outside / "model"), "X")
    missing = refused(str(outside / "missing"), config).replace(str(outside / "missing"), "X")
    assert existing == missing


def test_missing_folder_inside_a_root(roots):
    config, root, _ = roots
    assert "does not exist" in refused(str(root / "nothing-here"), config)


def test_a_file_instead_of_a_folder(roots):
    config, root, _ = roots
    (root / "weights.safetensors").write_bytes(b"x")
    assert "is a file, not a model folder" in refused(str(root / "weights.safetensors"), config)


def test_a_folder_without_config(roots):
    config, root, _ = roots
    (root / "empty").mkdir()
    assert "has no config.json" in refused(str(root / "empty"), config)


def test_too_long_reference(roots):
    config, root, _ = roots
    assert "too long" in refused("a" * 301, config)
    assert "too long" in refused(str(root) + "/" + "x" * 400, config)
    # long but within the limit: a clear answer, not an OSError about the name length
    assert "neither an embedded model" in refused("a" * 299, config)


@pytest.mark.parametrize("ref", ["a\x00b", "model\nname", "owner/na\tme"])
def test_control_characters(roots, ref):
    assert "control characters" in refused(ref, roots[0])


@pytest.mark.parametrize(
    "ref",
    ["a/../b", "a/b/c", "owner/my model", "owner /model", "modèle/x", "模型/名字", "owner/ｆｕｌｌ", "-owner/model",
     "owner/model.", "owner--x/model", "owner/model.git", "a/", "/", "owner/" + "m" * 97],
)
def test_odd_hub_ids_are_refused(roots, ref):
    config, _, _ = roots
    message = refused(ref, config)
    assert "neither an embedded model" in message or "outside the allowed" in message


@pytest.mark.parametrize("ref", ["gpt2", "openai-community/gpt2", "HuggingFaceTB/SmolLM2-135M-Instruct", "a_b/c.d-1"])
def test_ordinary_hub_ids_pass(roots, ref):
    assert refs.resolve(ref, roots[0]).source == "hub"


def test_run_reference_cannot_escape(roots):
    config, _, _ = roots
    for ref in ("run:../outside", "run:a/b", "run:.hidden"):
        with pytest.raises(ModelLoadError):
            refs.resolve(ref, config)


# ---- pickle weights -----------------------------------------------------------------------------------------------
@pytest.fixture
def pickle_only(config: AppConfig, tiny_root: Path) -> Path:
    """tiny-bert with its weights saved as pytorch_model.bin only, inside the models root."""
    from transformers import AutoModel

    folder = config.models_dir / "bert-bin"
    shutil.copytree(tiny_root / "tiny-bert", folder, ignore=shutil.ignore_patterns("*.safetensors"))
    model = AutoModel.from_pretrained(tiny_root / "tiny-bert")
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def test_pickle_only_folder_is_refused(config: AppConfig, pickle_only: Path):
    ctx = AppContext.create(config)
    with pytest.raises(ModelLoadError) as info:
        ctx.manager.load(str(pickle_only))
    assert "only has pickle weights (pytorch_model.bin)" in str(info.value)
    assert "LMW_ALLOW_PICKLE=1" in str(info.value)
    assert ctx.manager.load_count == 0


def test_pickle_only_folder_loads_when_allowed(config: AppConfig, pickle_only: Path, tiny_root: Path):
    from transformers import AutoModel

    config.allow_pickle_weights = True
    loaded = AppContext.create(config).manager.load(str(pickle_only), kind="encoder")
    reference = AutoModel.from_pretrained(tiny_root / "tiny-bert")
    name, weight = next(iter(reference.state_dict().items()))
    assert torch.equal(loaded.model.state_dict()[name], weight)
