"""Two users logged in at once (``LMW_USERS``): each sees and uses only their own fine-tuned runs, in the browser
(runs list, model pickers) and through the Gradio and ``/v1`` APIs (issue #20)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from playwright.sync_api import expect

from pipelines.users import hash_password
from tests.conftest import open_tab

PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}
KEYS = {"alice": "key-alice-123", "bob": "key-bob-456"}
ROWS = ["the cat sat on the mat", "a dog ran in the park", "birds sing in the morning", "rain falls on the roof"]


@pytest.fixture(scope="module")
def users_app(tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path, tiny_root: Path):
    from tests.app_server import running_app

    env = {
        "LMW_MODEL_ROOTS": str(tiny_root),
        "LMW_WARMUP": "0",
        "LMW_USERS": ",".join(f"{name}:{hash_password(pw)}" for name, pw in PASSWORDS.items()),
        "LMW_API_KEYS": ",".join(f"{key}:{name}" for name, key in KEYS.items()),
    }
    with running_app(tmp_path_factory.mktemp("users-data"), shared_cache_dir, env) as server:
        yield server


def train(url: str, user: str, tiny_root: Path, folder: Path) -> str:
    """A tiny causal-LM run trained through the Gradio API as ``user``; its id."""
    path = folder / f"{user}.csv"
    path.write_text("text\n" + "".join(f"{row} {i}\n" for i in range(3) for row in ROWS), encoding="utf-8")
    spec = json.dumps({"task": "causal-lm", "base_model": str(tiny_root / "tiny-llama"), "name": f"{user} lm",
                       "settings": {"epochs": 1, "batch_size": 4, "max_length": 16}})
    client = Client(url, auth=(user, PASSWORDS[user]), verbose=False)
    run_id, progress, *_ = client.predict(handle_file(str(path)), spec, api_name="/finetune")
    assert "data-status='complete'" in progress
    return run_id


def logged_in_page(browser, url: str, user: str):
    context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    answer = context.request.post(url + "login", form={"username": user, "password": PASSWORDS[user]})
    assert answer.ok, answer.text()
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.locator("#app-title").wait_for(timeout=60_000)
    return context, page


def picker_options(page) -> list[str]:
    page.locator("#generate-model input").click()
    options = page.get_by_role("option")
    options.first.wait_for(timeout=10_000)
    page.wait_for_timeout(1000)  # the focus event refreshes the choices
    page.locator("#generate-model input").click()
    texts = [options.nth(i).inner_text() for i in range(options.count())]
    page.keyboard.press("Escape")
    return texts


@pytest.mark.browser
def test_each_user_sees_and_uses_only_their_own_runs(users_app, browser, tiny_root, tmp_path) -> None:
    url = users_app["url"]
    alice_run = train(url, "alice", tiny_root, tmp_path)
    bob_run = train(url, "bob", tiny_root, tmp_path)

    pages = {}
    try:
        for user in ("alice", "bob"):
            pages[user] = logged_in_page(browser, url, user)
        for user, own, other in (("alice", alice_run, bob_run), ("bob", bob_run, alice_run)):
            _, page = pages[user]
            open_tab(page, "Fine-tune")
            expect(page.locator("#ft-runs")).to_contain_text(own, timeout=20_000)
            expect(page.locator("#ft-runs")).not_to_contain_text(other)
            open_tab(page, "Generate")
            options = " | ".join(picker_options(page))
            assert f"{user} lm" in options and ("bob lm" if user == "alice" else "alice lm") not in options, options
        _, page = pages["bob"]  # bob types alice's run into the picker: refused, with a sentence saying why
        page.locator("#generate-model input").fill(f"run:{alice_run}")
        page.keyboard.press("Enter")
        page.locator("#generate-prompt textarea").fill("Hello")
        page.locator("#generate-run").click()
        expect(page.get_by_text("belongs to another user").first).to_be_visible(timeout=30_000)
    finally:
        for context, _ in pages.values():
            context.close()

    bob = Client(url, auth=("bob", PASSWORDS["bob"]), verbose=False)
    assert [r["id"] for r in bob.predict(api_name="/runs")] == [bob_run]
    with pytest.raises(Exception, match="another user"):
        bob.predict(alice_run, api_name="/download_run")
    with pytest.raises(Exception, match="another user"):
        bob.predict(alice_run, api_name="/delete_run")
    with pytest.raises(Exception, match="403"):  # refused by the gate before any handler
        bob.predict(f"run:{alice_run}", api_name="/unload_model")

    def v1(user: str, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {KEYS[user]}"}
        return httpx.request(method, url + "v1" + path, headers=headers, timeout=120, **kwargs)

    assert f"run:{alice_run}" in [m["id"] for m in v1("alice", "GET", "/models").json()["data"]]
    assert f"run:{alice_run}" not in [m["id"] for m in v1("bob", "GET", "/models").json()["data"]]
    body = {"model": f"run:{alice_run}", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    refused = v1("bob", "POST", "/chat/completions", json=body)
    assert refused.status_code == 403 and "another user" in refused.json()["error"]["message"]
    assert httpx.get(url + "v1/models", timeout=30).status_code == 401  # no key: no answer
    assert (Path(users_app["log"]).read_text(errors="replace").count(KEYS["alice"])) == 0  # keys never logged
