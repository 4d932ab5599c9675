"""Shared fixtures: an isolated app config, the prepared embedded-model cache and tiny local models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pipelines.config import AppConfig  # noqa: E402
from pipelines.context import AppContext  # noqa: E402
from tests import tiny_models  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def shared_cache_dir() -> Path:
    """The embedded models' cache filled by the install step (reused so tests don't re-convert)."""
    return AppConfig.from_env().cache_dir


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path) -> Path:
    """A model root holding tiny random models: llama, gpt2, bert, bert-cls, t5."""
    root = tmp_path_factory.mktemp("models")
    for kind in ("llama", "gpt2", "bert", "bert-cls", "t5"):
        tiny_models.build(kind, root / f"tiny-{kind}", shared_cache_dir)
    return root


@pytest.fixture
def config(tmp_path: Path, shared_cache_dir: Path, tiny_root: Path) -> AppConfig:
    """A config with its own data folders, the shared cache and the tiny models' root allowed."""
    return AppConfig(data_dir=tmp_path / "data", cache_dir=shared_cache_dir, extra_model_roots=[tiny_root])


@pytest.fixture
def ctx(config: AppConfig) -> AppContext:
    return AppContext.create(config)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """A folder the test run keeps (screenshots, reports)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
