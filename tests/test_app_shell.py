"""The app starts, serves its page before any model is loaded, and the Models tab works in a browser."""

from __future__ import annotations

import pytest
from gradio_client import Client

from tests.conftest import open_tab


def test_app_serves_its_page_before_any_model_is_loaded(tmp_path, shared_cache_dir) -> None:
    from tests.app_server import running_app

    with running_app(tmp_path / "data", shared_cache_dir) as server:
        client = Client(server["url"], verbose=False)
        status, rows = client.predict(None, api_name="/unload_model")
        assert status == "Unloaded 0 model(s)."  # nothing was loaded by starting the app
        assert rows["data"] == []
        print(f"HTTP 200 on / after {server['startup_s']:.1f} s")


def test_unknown_hub_id_gives_one_clear_sentence_over_the_api(app_server) -> None:
    client = Client(app_server["url"], verbose=False)
    with pytest.raises(Exception) as info:
        client.predict("nobody-here/no-such-model", "auto", "auto", api_name="/load_model")
    message = str(info.value)
    assert "Hugging Face Hub" in message
    assert "Traceback" not in message


@pytest.mark.browser
def test_models_tab_loads_a_model_in_the_browser(page, artifacts_dir) -> None:
    open_tab(page, "Models")
    page.get_by_role("button", name="Load", exact=True).click()
    status = page.locator("#models-status")
    status.get_by_text("Loaded").wait_for(timeout=60_000)
    assert "smollm2-135m-instruct" in status.inner_text()
    shots = artifacts_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "models.png"), full_page=True)
