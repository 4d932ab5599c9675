"""Docker, Hugging Face Space, CI and login settings: checked without a Docker engine."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
import yaml

import app
from pipelines import config as config_module

ROOT = Path(__file__).resolve().parent.parent


def _dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)


def test_dockerfile_base_user_port_and_healthcheck() -> None:
    steps = _dockerfile()
    instructions = [i for i, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [arg for i, arg in steps if i == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in instructions and ("EXPOSE", "7860") in steps
    env = " ".join(arg for i, arg in steps if i == "ENV")
    assert "GRADIO_SERVER_NAME=0.0.0.0" in env and "GRADIO_SERVER_PORT=7860" in env


def test_dockerfile_copies_existing_files_and_installs_like_the_readme() -> None:
    steps = _dockerfile()
    for instruction, arg in steps:
        if instruction == "COPY":
            sources = [part for part in arg.split() if not part.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    runs = [arg for i, arg in steps if i == "RUN"]
    assert "./run.sh install" in runs
    install_cmd, test_cmd = _readme_commands()[:2]
    assert install_cmd == "./run.sh" and test_cmd == "./run.sh test"
    run_sh = (ROOT / "run.sh").read_text()
    # The README's command runs install_app first; the Dockerfile runs that same step.
    assert re.search(r"run\) install_app; exec", run_sh) and re.search(r"install\) install_app", run_sh)
    for copied in ("requirements.txt", "requirements-models.txt", "run.sh", "pipelines"):
        assert any(copied in arg for i, arg in steps if i == "COPY")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./run.sh test" in ci and "HF_HUB_OFFLINE=1" in ci and "set -euo pipefail" in ci


def test_readme_front_matter_is_a_valid_gradio_space() -> None:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).exists()
    pinned = re.search(r"^gradio==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert meta["sdk_version"] == pinned
    assert {"title", "emoji", "colorFrom", "colorTo"} <= set(meta)


def test_launch_settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "PORT", "LMW_USERNAME", "LMW_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    defaults = app.launch_kwargs()
    assert defaults["server_name"] == "127.0.0.1" and defaults["server_port"] == 7860 and defaults["auth"] is None
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("LMW_USERNAME", "ada")
    monkeypatch.setenv("LMW_PASSWORD", "s3cret")
    custom = app.launch_kwargs()
    assert custom["server_name"] == "0.0.0.0" and custom["server_port"] == 8080
    assert custom["auth"] == ("ada", "s3cret")


def test_space_persistent_storage_holds_the_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert config_module._default_data_dir(tmp_path) == config_module.APP_ROOT / "data"
    monkeypatch.setenv("SPACE_ID", "someone/lm-workbench")
    assert config_module._default_data_dir(tmp_path) == tmp_path / "lm-workbench"
    assert config_module._default_data_dir(tmp_path / "not-mounted") == config_module.APP_ROOT / "data"


def test_password_turns_on_login(tmp_path: Path, shared_cache_dir: Path) -> None:
    from gradio_client import Client

    from tests.app_server import running_app

    env = {"LMW_USERNAME": "ada", "LMW_PASSWORD": "s3cret"}
    with running_app(tmp_path / "data", shared_cache_dir, env) as server:
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do; the point is that it is refused
            Client(server["url"], verbose=False)
        client = Client(server["url"], auth=("ada", "s3cret"), verbose=False)
        status, _ = client.predict("minilm-l6", api_name="/unload_model")
        assert "Unloaded" in status
        # the login page is the same HTML page: the language switch's choice reaches it too
        request = urllib.request.Request(server["url"], headers={"Cookie": "lmw_lang=zh-CN"})
        with urllib.request.urlopen(request, timeout=30) as response:
            page = response.read()
            assert int(response.headers["content-length"]) == len(page)
        assert b'"auth_required":true' in page.replace(b" ", b"") and b'data-lmw-lang="zh-CN"' in page
