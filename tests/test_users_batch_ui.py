"""A logged-in user's batch over the rows quota (``LMW_QUOTA_ROWS``) is refused with one sentence: in the browser
as soon as the file is uploaded, and through the Gradio API before any row is classified (issue #20)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from playwright.sync_api import expect

from pipelines.users import hash_password
from tests.conftest import open_tab
from tests.test_users_ui import logged_in_page

PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}


@pytest.fixture(scope="module")
def quota_app(tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path, tiny_root: Path):
    from tests.app_server import running_app

    env = {"LMW_MODEL_ROOTS": str(tiny_root), "LMW_WARMUP": "0", "LMW_QUOTA_ROWS": "3",
           "LMW_USERS": ",".join(f"{name}:{hash_password(pw)}" for name, pw in PASSWORDS.items())}
    with running_app(tmp_path_factory.mktemp("quota-data"), shared_cache_dir, env) as server:
        yield server


@pytest.mark.browser
def test_batch_over_the_rows_quota_is_refused_in_the_browser_and_the_api(quota_app, browser, tmp_path) -> None:
    url = quota_app["url"]
    path = tmp_path / "five.csv"
    path.write_text("text,label\n" + "".join(f"row number {i},pos\n" for i in range(5)), encoding="utf-8")
    context, page = logged_in_page(browser, url, "alice")
    try:
        open_tab(page, "Classify")
        page.get_by_role("tab", name="Batch (CSV)").first.click()
        page.locator("#classify-batch-file input[type=file]").set_input_files(str(path))
        line = page.locator("#classify-batch-errors")
        expect(line).to_contain_text("over your limit of 3 rows", timeout=30_000)
        expect(line).to_contain_text("LMW_QUOTA_ROWS")
    finally:
        context.close()
    client = Client(url, auth=("bob", PASSWORDS["bob"]), verbose=False)
    with pytest.raises(Exception, match="LMW_QUOTA_ROWS"):
        client.predict(handle_file(str(path)), "text", "label", "embeddings", "minilm-l6", "pos, neg", "",
                       api_name="/classify_csv")
