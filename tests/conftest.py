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


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path, tiny_root: Path):
    """One running app for the whole test session (API and browser tests)."""
    from tests.app_server import running_app

    data = tmp_path_factory.mktemp("app-data")
    with running_app(data, shared_cache_dir, {"LMW_MODEL_ROOTS": str(tiny_root)}) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_server):
    """A fresh page on the app that fails the test on console errors or requests to other hosts."""
    from urllib.parse import urlparse

    origin = urlparse(app_server["url"]).netloc
    context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    foreign: list[str] = []
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: errors.append(str(exc)))

    def check_request(request) -> None:
        parsed = urlparse(request.url)
        if parsed.scheme in ("http", "https", "ws", "wss") and parsed.netloc != origin:
            foreign.append(request.url)

    pg.on("request", check_request)
    # Not "networkidle": an app with gr.State keeps a heartbeat request open for the whole session.
    pg.goto(app_server["url"], wait_until="load")
    pg.locator("#app-title").wait_for(timeout=60_000)
    pg.get_by_role("tab").first.wait_for(timeout=60_000)
    yield pg
    context.close()
    assert not foreign, f"requests to other hosts: {foreign}"
    assert not app_errors(errors), f"browser console errors: {errors}"


ABORTED = "AbortError: signal is aborted without reason"  # the page's own reload cut a request (a progress tick)


def app_errors(errors: list[str]) -> list[str]:
    """The console errors that say something about the app: a test's ``page.reload()`` aborting a request that was
    in flight logs an AbortError and, from Gradio's client, "Connection errored out"; those two go together."""
    if not any(e.startswith(ABORTED) for e in errors):
        return errors
    return [e for e in errors if not e.startswith(ABORTED) and "Connection errored out" not in e]


def open_tab(page, name: str) -> None:
    """Click the tab button whose visible text is ``name``."""
    page.get_by_role("tab", name=name).click()


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    """A folder inside Gradio's upload temp dir: files there count as uploads of this app."""
    import shutil

    from pipelines.uploads import gradio_temp_dir

    folder = gradio_temp_dir() / f"test-{tmp_path.name}"
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def choose(page, label: str) -> None:
    """Check the radio or checkbox labelled ``label``, again if a tab's page-load update reset it meanwhile."""
    option = page.get_by_label(label)
    for _ in range(20):
        option.click()
        page.wait_for_timeout(250)
        if option.is_checked():
            return
    assert option.is_checked(), f"{label!r} did not stay checked"


def fill_kept(field, value: str) -> None:
    """Type ``value`` into ``field`` (then Tab), again if the field was reset meanwhile: an accordion's fields mount
    on first open, and a value typed while they mount can be lost."""
    for _ in range(10):
        field.fill(value)
        field.press("Tab")
        field.page.wait_for_timeout(300)
        if field.input_value() == value:
            return
    assert field.input_value() == value, f"the field did not keep {value!r}"
