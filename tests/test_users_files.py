"""Files written for a user to download are theirs (issue #20): with logins, batch and evaluation outputs live in
the user's own folder, Gradio's file route serves them to their owner and admins only, and an event naming another
user's file is refused; without login nothing changes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from components.users_files import UserFilesGate, user_files_middleware
from pipelines import user_files
from pipelines.user_files import ANONYMOUS, folder_name, keep_for, may_download, output_folder, outputs_root
from pipelines.users import Users, hash_password

PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3"}
ADMINS = ("carol",)


# --- the pure rules ---------------------------------------------------------------------------------------------


def test_folder_names_are_the_plain_user_names_else_hashed() -> None:
    assert folder_name("alice") == "alice"
    assert folder_name("") == ANONYMOUS
    odd = folder_name("../bob")
    assert odd.startswith("~") and "/" not in odd and odd != folder_name("..bob")
    assert folder_name(".hidden").startswith("~")


def test_may_download_only_own_files_or_as_admin(tmp_path: Path) -> None:
    root = tmp_path / "lmw-outputs"
    alice_file = root / "alice" / "lmw-batch-1" / "out.csv"
    alice_file.parent.mkdir(parents=True)
    alice_file.write_text("x", encoding="utf-8")
    roots = [root]
    assert may_download(alice_file, "alice", False, roots)
    assert not may_download(alice_file, "bob", False, roots)
    assert not may_download(alice_file, "", False, roots)  # a request without a user
    assert may_download(alice_file, "carol", True, roots)  # an admin
    assert may_download(alice_file, None, False, roots)  # no login: single-user, nothing checked
    assert may_download(tmp_path / "elsewhere.csv", "bob", False, roots)  # not an outputs file: not ours to judge
    sneaky = root / "bob" / ".." / "alice" / "lmw-batch-1" / "out.csv"
    assert not may_download(sneaky, "bob", False, roots)
    assert not may_download(root / "stray.csv", "bob", False, roots)  # directly in the root: admins only
    assert user_files.owner_folder(alice_file, roots) == "alice" and user_files.owner_folder(tmp_path, roots) is None


def test_output_folders_are_per_user_and_private(tmp_path: Path) -> None:
    root = tmp_path / "lmw-outputs"
    mine = output_folder("alice", "lmw-batch-", root)
    assert mine.parent == root / "alice" and mine.name.startswith("lmw-batch-")
    assert stat.S_IMODE(os.stat(root / "alice").st_mode) == 0o700
    plain = output_folder(None, "lmw-batch-", root)  # no login: a temp folder as before
    assert root not in plain.parents
    plain.rmdir()


def test_keep_for_moves_or_copies_into_the_users_folder(tmp_path: Path) -> None:
    root = tmp_path / "lmw-outputs"
    made = tmp_path / "made"
    made.mkdir()
    (made / "predictions.csv").write_text("a", encoding="utf-8")
    (made / "evaluation.json").write_text("{}", encoding="utf-8")
    given = [str(made / "predictions.csv"), str(made / "evaluation.json")]
    assert keep_for(None, given, root=root) == given  # no login: unchanged
    moved = keep_for("bob", given, "lmw-evaluate-", root=root, move=True)
    assert [Path(p).name for p in moved] == ["predictions.csv", "evaluation.json"]
    assert all(user_files.owner_folder(p, [root]) == "bob" for p in moved) and not made.exists()
    assert keep_for("bob", moved, root=root) == moved  # already the user's
    source = tmp_path / "run.zip"
    source.write_text("zip", encoding="utf-8")
    (copy,) = keep_for("alice", [source], root=root)
    assert source.exists() and Path(copy).read_text(encoding="utf-8") == "zip"  # copied: the run's zip stays
    assert user_files.owner_folder(copy, [root]) == "alice"


# --- the HTTP glue, on a bare Starlette app -------------------------------------------------------------------------


class FakeCtx:
    def __init__(self, users: Users) -> None:
        self.users = users


def gate_client(tmp_path: Path, users: Users) -> tuple[TestClient, Path]:
    root = tmp_path / "lmw-outputs"

    async def serve(request):  # stands in for Gradio's file and event routes
        return PlainTextResponse("served")

    app = Starlette(routes=[Route("/gradio_api/file={path:path}", serve),
                            Route("/gradio_api/queue/join", serve, methods=["POST"])],
                    middleware=[Middleware(UserFilesGate, ctx=FakeCtx(users), roots=[str(root)])])
    app.cookie_id = "cid"
    app.tokens = {"tok-alice": "alice", "tok-bob": "bob", "tok-carol": "carol"}
    return TestClient(app), root


def _users(**kwargs) -> Users:
    lines = ",".join(f"{n}:{hash_password(p, n=2, r=1, p=1)}" + (":admin" if n in ADMINS else "")
                     for n, p in PASSWORDS.items())
    return Users.parse(lines, **kwargs)


def test_gate_serves_a_file_to_its_owner_and_admins_only(tmp_path: Path) -> None:
    client, root = gate_client(tmp_path, _users(keys="key-bob:bob"))
    path = output_folder("alice", "lmw-batch-", root) / "out.csv"
    path.write_text("x", encoding="utf-8")
    url = f"/gradio_api/file={path}"

    def get(token: str = "", **headers) -> httpx.Response:
        cookies = {"access-token-cid": token} if token else {}
        return client.get(url, headers={**headers, "cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})

    assert get("tok-alice").text == "served"
    assert get("tok-carol").text == "served"
    refused = get("tok-bob")
    assert refused.status_code == 403 and "another user" in refused.json()["error"]
    assert get().status_code == 403
    assert get(authorization="Bearer key-bob").status_code == 403
    zh = client.get(url, headers={"cookie": "access-token-cid=tok-bob; lmw_lang=zh-CN"})
    assert zh.status_code == 403 and "其他用户" in zh.json()["error"]
    assert client.get(f"/gradio_api/file={tmp_path / 'other.csv'}", headers={"cookie": "access-token-cid=tok-bob"}
                      ).text == "served"  # not an outputs file: Gradio's own rules apply


def test_gate_refuses_an_event_naming_another_users_file(tmp_path: Path) -> None:
    client, root = gate_client(tmp_path, _users())
    path = output_folder("alice", "lmw-batch-", root) / "classified.csv"
    path.write_text("x", encoding="utf-8")
    body = {"data": [{"path": str(path), "meta": {"_type": "gradio.FileData"}}, "text"], "session_hash": "s"}
    bob = client.post("/gradio_api/queue/join", content=json.dumps(body),
                      headers={"cookie": "access-token-cid=tok-bob"})
    assert bob.status_code == 403
    alice = client.post("/gradio_api/queue/join", content=json.dumps(body),
                        headers={"cookie": "access-token-cid=tok-alice"})
    assert alice.text == "served"


def test_no_gate_without_login() -> None:
    assert user_files_middleware(FakeCtx(Users())) == []
    assert user_files_middleware(None) == []
    assert len(user_files_middleware(FakeCtx(_users()))) == 1
    assert outputs_root().name == "lmw-outputs"


# --- the served app -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files_app(tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path, tiny_root: Path):
    from tests.app_server import running_app

    env = {"LMW_MODEL_ROOTS": str(tiny_root), "LMW_WARMUP": "0",
           "LMW_USERS": ",".join(f"{n}:{hash_password(p)}" + (":admin" if n in ADMINS else "")
                                 for n, p in PASSWORDS.items())}
    with running_app(tmp_path_factory.mktemp("files-data"), shared_cache_dir, env) as server:
        yield server


def logged_in(url: str, user: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    answer = client.post("login", data={"username": user, "password": PASSWORDS[user]})
    assert answer.status_code == 200, answer.text
    return client


def batch_files(url: str, csv: Path, model: str, auth: tuple[str, str] | None) -> list[dict]:
    from gradio_client import Client, handle_file

    client = Client(url, auth=auth, verbose=False, download_files=False)
    _status, _preview, files, *_ = client.predict(handle_file(str(csv)), "text", "label", "embeddings", model,
                                                  "sports, cooking", "", "auto", api_name="/classify_csv")
    assert files and len(files) == 2
    return files


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text("text,label\nThe striker scored a goal,sports\nBake the bread for an hour,cooking\n",
                    encoding="utf-8")
    return path


def test_served_batch_and_evaluation_files_are_their_owners(files_app, tiny_root, tmp_path) -> None:
    url, model = files_app["url"], str(tiny_root / "tiny-bert")
    alice, bob, carol = (logged_in(url, name) for name in ("alice", "bob", "carol"))
    files = batch_files(url, _csv(tmp_path), model, ("alice", PASSWORDS["alice"]))
    for file in files:
        assert "/lmw-outputs/alice/" in file["path"]
        link = file["url"].removeprefix(url.rstrip("/"))
        assert alice.get(link).status_code == 200 and "sports" in alice.get(link).text
        assert carol.get(link).status_code == 200  # an admin
        refused = bob.get(link)
        assert refused.status_code == 403 and "another user" in refused.json()["error"]
        assert httpx.get(url.rstrip("/") + link, timeout=30).status_code in (401, 403)  # no login at all
    # bob cannot read alice's file by naming its path as an input either
    body = {"data": [{"path": files[0]["path"], "meta": {"_type": "gradio.FileData"}}, "text", "label", "embeddings",
                     model, "sports, cooking", "", "auto"]}
    assert bob.post("gradio_api/call/classify_csv", json=body).status_code == 403

    from gradio_client import Client, handle_file

    evaluator = Client(url, auth=("bob", PASSWORDS["bob"]), verbose=False, download_files=False)
    *_, eval_files = evaluator.predict(handle_file(str(_csv(tmp_path))), "text", "label", [model], "classification",
                                       12, 8, 50, 0, api_name="/evaluate")
    assert eval_files and all("/lmw-outputs/bob/" in f["path"] for f in eval_files)
    link = eval_files[0]["url"].removeprefix(url.rstrip("/"))
    assert bob.get(link).status_code == 200 and alice.get(link).status_code == 403
    # a logged-in API client still downloads its own files (gradio_client sends its login cookie)
    *_, downloaded = Client(url, auth=("bob", PASSWORDS["bob"]), verbose=False).predict(
        handle_file(str(_csv(tmp_path))), "text", "label", [model], "classification", 12, 8, 50, 0,
        api_name="/evaluate")
    assert downloaded and all(Path(f).is_file() for f in downloaded)


def test_without_login_batch_files_download_as_before(app_server, tiny_root, tmp_path) -> None:
    url = app_server["url"]
    files = batch_files(url, _csv(tmp_path), str(tiny_root / "tiny-bert"), None)
    assert all("lmw-outputs" not in f["path"] for f in files)
    answer = httpx.get(url.rstrip("/") + files[0]["url"].removeprefix(url.rstrip("/")), timeout=30)
    assert answer.status_code == 200 and "sports" in answer.text


@pytest.mark.browser
def test_browser_download_links_work_for_their_owner_only(files_app, browser, tmp_path) -> None:
    from tests.conftest import open_tab
    from tests.test_users_ui import logged_in_page

    url = files_app["url"]
    alice, page = logged_in_page(browser, url, "alice")
    bob, _ = logged_in_page(browser, url, "bob")
    try:
        open_tab(page, "Classify")
        page.get_by_role("tab", name="Batch (CSV)").first.click()
        page.locator("#classify-batch-file input[type=file]").set_input_files(str(_csv(tmp_path)))
        page.wait_for_timeout(1500)  # the column pickers fill after the upload
        page.locator("#classify-batch-run").click()
        link = page.locator("#classify-batch-files a[href*='lmw-outputs']").first
        link.wait_for(state="attached", timeout=120_000)
        href = link.get_attribute("href")
        assert "/lmw-outputs/alice/" in href
        assert alice.request.get(href).ok and "sports" in alice.request.get(href).text()
        refused = bob.request.get(href)
        assert refused.status == 403 and "another user" in refused.json()["error"]
    finally:
        alice.close()
        bob.close()
