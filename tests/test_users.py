"""Users of a shared app: hashed logins, API keys, owners of runs, quotas, the rate limit and stored secrets."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.errors import InputError, LimitError, ModelLoadError
from pipelines.quotas import Quotas
from pipelines.ratelimit import RateLimiter
from pipelines.training.store import tmp_folder
from pipelines.users import Users, can_see, hash_password, main, verify_password

ALICE_PW, BOB_PW, ROOT_PW = "alice-pw", "bob-pw", "root-pw"


@pytest.fixture(scope="module")
def users_spec() -> str:
    return ",".join([f"alice:{hash_password(ALICE_PW)}", f"bob:{hash_password(BOB_PW)}",
                     f"root:{hash_password(ROOT_PW)}:admin"])


def make_run(root: Path, run_id: str, task: str = "causal-lm", created: str = "2026-01-01T00:00:00") -> None:
    folder = root / run_id
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "weights.bin").write_bytes(b"x" * 1000)
    meta = {"task": task, "base_model": "smollm2-135m-instruct", "status": "complete", "name": run_id,
            "created": created}
    (folder / "run.json").write_text(json.dumps(meta), encoding="utf-8")


@pytest.fixture
def ctx(tmp_path: Path, users_spec: str) -> AppContext:
    config = AppConfig(data_dir=tmp_path / "data", users=users_spec, api_keys="key-a:alice,key-b:bob,key-r:root")
    ctx = AppContext.create(config)
    make_run(config.runs_dir, "alice-run")
    make_run(config.runs_dir, "bob-run", task="classification")
    make_run(config.runs_dir, "old-run")  # made before login was turned on: no owner
    ctx.runs.set_owner("alice-run", "alice")
    ctx.runs.set_owner("bob-run", "bob")
    return ctx


# ---- passwords and logins ------------------------------------------------------------------------------------------
def test_passwords_are_salted_scrypt_hashes_checked_in_constant_time() -> None:
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first.startswith("scrypt$") and first != second and "s3cret" not in first  # a fresh salt each time
    assert verify_password("s3cret", first) and verify_password("s3cret", second)
    assert not verify_password("S3cret", first) and not verify_password("s3cret", "plain-text")
    assert not verify_password("s3cret", "scrypt$16384$8$1$zz$zz")  # malformed: no exception, just False


def test_users_from_inline_spec_and_file_with_admin_role(tmp_path: Path, users_spec: str) -> None:
    users = Users.parse(users_spec)
    assert users.enabled and users.admins == frozenset({"root"})
    assert users.check("alice", ALICE_PW) and not users.check("alice", BOB_PW)
    assert not users.check("mallory", ALICE_PW) and not users.check("", "")
    path = tmp_path / "users.txt"
    path.write_text("# team\n" + users_spec.replace(",", "\n") + "\n", encoding="utf-8")
    from_file = Users.parse(str(path))
    assert [u.name for u in from_file.users] == ["alice", "bob", "root"] and from_file.check("bob", BOB_PW)
    assert "scrypt" not in repr(from_file.users[0])  # the hash stays out of logs
    assert not Users.parse("").enabled


def test_malformed_users_and_keys_are_keyed_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        Users.parse("alice:plaintext-password")
    assert info.value.key == "users.error.bad_line" and "python -m pipelines.users add" in str(info.value)
    with pytest.raises(InputError) as info:
        Users.parse("", "just-a-key")
    assert info.value.key in ("users.error.bad_key_line", "users.error.no_file")
    with pytest.raises(InputError) as info:
        Users.parse(str(tmp_path / "missing-users-file"))
    assert info.value.key == "users.error.no_file"


def test_api_keys_map_to_users() -> None:
    users = Users.parse("", "key-a:alice,key-b:bob")
    assert users.user_of_key("key-a") == "alice" and users.user_of_key("key-b") == "bob"
    assert users.user_of_key("key-c") is None and users.user_of_key("") is None
    assert "key-a" not in repr(users)


def test_add_command_prints_or_appends_a_hashed_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hunter2\n"))
    assert main(["add", "carol", "--admin", "--password-stdin"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("carol:scrypt$") and line.endswith(":admin") and "hunter2" not in line
    assert Users.parse(line).check("carol", "hunter2") and Users.parse(line).admins == frozenset({"carol"})
    target = tmp_path / "users.txt"
    monkeypatch.setattr("sys.stdin", io.StringIO("pw2\n"))
    assert main(["add", "dave", "--file", str(target), "--password-stdin"]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert Users.parse(str(target)).check("dave", "pw2")


# ---- owners ---------------------------------------------------------------------------------------------------------
def test_can_see_rules() -> None:
    assert can_see("alice", None) and can_see("", None)  # no login: single user, no checks
    assert can_see("alice", "alice") and not can_see("alice", "bob")
    assert not can_see("", "bob") and can_see("", "root", frozenset({"root"}))  # ownerless: admins only
    assert can_see("alice", "root", frozenset({"root"})) and not can_see("alice", "", frozenset({"root"}))


def test_run_store_lists_and_gives_each_user_their_own_runs(ctx: AppContext) -> None:
    ids = lambda user: sorted(r.id for r in ctx.runs.list(None, user))  # noqa: E731
    assert ids("alice") == ["alice-run"] and ids("bob") == ["bob-run"]
    assert ids("root") == ["alice-run", "bob-run", "old-run"] and ids(None) == ids("root")
    assert ids("") == []  # a request without a user sees nobody's runs
    assert ctx.runs.find("alice-run", "alice").owner == "alice"
    for action in (ctx.runs.find, ctx.runs.get, ctx.runs.zip, ctx.runs.delete):
        with pytest.raises(ModelLoadError) as info:
            action("alice-run", "bob")
        assert info.value.key == "users.error.not_yours" and "another user" in str(info.value)
    assert (ctx.config.runs_dir / "alice-run").is_dir()  # bob's delete did nothing
    ctx.runs.delete("alice-run", "root")  # an admin may
    assert not (ctx.config.runs_dir / "alice-run").exists() and ctx.runs.owner_of("alice-run") == ""


def test_model_pickers_and_refs_resolve_with_the_user(ctx: AppContext) -> None:
    from pipelines.models.refs import resolve

    refs = lambda user: [ref for _, ref in ctx.model_choices((), user) if ref.startswith("run:")]  # noqa: E731
    assert refs("alice") == ["run:alice-run"] and refs("bob") == ["run:bob-run"] and len(refs(None)) == 3
    assert resolve("run:alice-run", ctx.config, "alice").run.id == "alice-run"
    with pytest.raises(ModelLoadError) as info:
        resolve("run:alice-run", ctx.config, "bob")
    assert info.value.key == "users.error.not_yours"
    assert resolve("run:old-run", ctx.config, "root").run.id == "old-run"  # the admin of the store made by refs


def test_components_user_of_and_picker_choices(ctx: AppContext) -> None:
    from components.common import model_choices
    from components.users import user_of

    alice = SimpleNamespace(username="alice")
    assert user_of(ctx, alice) == "alice" and user_of(ctx, None) == ""
    assert user_of(SimpleNamespace(users=Users()), alice) is None  # no login: no checks
    refs = [ref for _, ref in model_choices(ctx, (), alice) if ref.startswith("run:")]
    assert refs == ["run:alice-run"]
    assert not [ref for _, ref in model_choices(ctx, ()) if ref.startswith("run:")]  # built before any login


def test_finetune_handlers_check_the_owner(ctx: AppContext) -> None:
    from components.finetune_handlers import FinetuneHandlers

    handlers = FinetuneHandlers(ctx)
    assert handlers.runs("en", user="bob").choices == ["bob-run"]
    assert [r["id"] for r in handlers.list_runs("alice")] == ["alice-run"]
    zipped = Path(handlers.download("alice-run", "alice"))
    assert zipped.is_file()
    from pipelines.user_files import may_download, outputs_root, user_folder

    assert zipped.resolve().is_relative_to(user_folder("alice").resolve())  # the zip lies in alice's own folder
    roots = [outputs_root()]
    assert not may_download(zipped, "bob", False, roots) and may_download(zipped, "alice", False, roots)
    for call in (lambda: handlers.download("alice-run", "bob"), lambda: handlers.delete("alice-run", "en", "bob"),
                 lambda: handlers.merge("alice-run", "en", None, "bob"),
                 lambda: handlers.resume("alice-run", "s1", user="bob")):
        with pytest.raises(ModelLoadError, match="another user"):
            call()
    assert sorted(handlers.runs("en").choices) == ["alice-run", "bob-run", "old-run"]  # no user: as before


def test_without_login_nothing_is_checked(tmp_path: Path) -> None:
    ctx = AppContext.create(AppConfig(data_dir=tmp_path / "data"))
    make_run(ctx.config.runs_dir, "r1")
    ctx.runs.set_owner("r1", None)  # nothing recorded without a user
    assert not ctx.users.enabled and [r.id for r in ctx.runs.list(None)] == ["r1"]
    assert ctx.runs.find("r1").owner == "" and not (ctx.config.runs_dir / ".owners").exists()


# ---- quotas ---------------------------------------------------------------------------------------------------------
def test_quotas_name_the_limit_and_the_variable(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    Quotas().check_new_run(ctx.runs, "alice")  # one run, within the defaults
    Quotas(runs=1).check_new_run(ctx.runs, None)  # no login: nothing checked
    with pytest.raises(LimitError) as info:
        Quotas(runs=1).check_new_run(ctx.runs, "alice")
    assert info.value.key == "users.quota.runs" and "LMW_QUOTA_RUNS" in str(info.value) and "1" in str(info.value)
    with pytest.raises(LimitError, match="LMW_QUOTA_DISK_MB"):
        Quotas(run_disk_mb=0).check_new_run(ctx.runs, "alice")
    tmp_folder(ctx.config.runs_dir, "alice-2").mkdir()  # a run of alice's being trained now
    ctx.runs.set_owner("alice-2", "alice")
    with pytest.raises(LimitError) as info:
        Quotas(jobs=1).check_new_run(ctx.runs, "alice")
    assert info.value.key == "users.quota.jobs" and "LMW_QUOTA_JOBS" in str(info.value)
    Quotas(jobs=1).check_new_run(ctx.runs, "bob")  # bob's own count
    with pytest.raises(LimitError, match="LMW_QUOTA_UPLOAD_MB"):
        Quotas(upload_mb=1).check_upload(3 * 2**20, "bob")
    with pytest.raises(LimitError, match="LMW_QUOTA_ROWS"):
        Quotas(batch_rows=10).check_rows(11, "bob")
    Quotas(batch_rows=10).check_rows(11, None)
    monkeypatch.setenv("LMW_QUOTA_RUNS", "7")
    monkeypatch.setenv("LMW_QUOTA_JOBS", "x")
    assert Quotas.from_env().runs == 7 and Quotas.from_env().jobs == Quotas.jobs


def test_finetune_quota_check_refuses_before_training(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.finetune_handlers import FinetuneHandlers

    monkeypatch.setenv("LMW_QUOTA_RUNS", "1")
    ctx.__dict__.pop("quotas", None)
    with pytest.raises(LimitError, match="LMW_QUOTA_RUNS"):
        FinetuneHandlers(ctx).check_quota("alice")
    FinetuneHandlers(ctx).check_quota(None)
    monkeypatch.setenv("LMW_QUOTA_RUNS", "50")
    monkeypatch.setenv("LMW_QUOTA_UPLOAD_MB", "1")
    ctx.__dict__.pop("quotas", None)
    big = ctx.config.data_dir / "big.csv"
    big.write_bytes(b"text\n" + b"a" * 2 * 2**20)
    with pytest.raises(LimitError, match="LMW_QUOTA_UPLOAD_MB"):
        FinetuneHandlers(ctx).check_quota("alice", str(big))
    FinetuneHandlers(ctx).check_quota("alice", str(ctx.config.data_dir / "missing.csv"))


# ---- rate limit -----------------------------------------------------------------------------------------------------
def test_rate_limiter_is_per_user_and_says_how_long_to_wait() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=60, burst=2, clock=lambda: now[0])
    assert limiter.allow("alice") == 0 and limiter.allow("alice") == 0
    assert limiter.allow("alice") == 1  # one request a second refills: wait 1 s
    assert limiter.allow("bob") == 0  # bob has his own bucket
    now[0] = 1.0
    assert limiter.allow("alice") == 0
    assert RateLimiter(rate=0).allow("x") == 0  # 0: off


# ---- the /v1 API ----------------------------------------------------------------------------------------------------
@pytest.fixture
def api(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    from components.openai_api import openai_routes

    monkeypatch.setenv("LMW_RATE_LIMIT", "60")
    monkeypatch.setenv("LMW_RATE_BURST", "3")
    app = FastAPI()
    app.include_router(openai_routes(ctx))
    return TestClient(app)


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["data"]]


def test_v1_needs_a_key_and_shows_each_user_their_runs(api: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert api.get("/v1/models").status_code == 401
    wrong = api.get("/v1/models", headers={"Authorization": "Bearer key-x"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    alice = _ids(api.get("/v1/models", headers={"Authorization": "Bearer key-a"}))
    assert "run:alice-run" in alice and "smollm2-135m-instruct" in alice and "run:old-run" not in alice
    assert "run:alice-run" not in _ids(api.get("/v1/models", headers={"Authorization": "Bearer key-b"}))
    assert "run:old-run" in _ids(api.get("/v1/models", headers={"Authorization": "Bearer key-r"}))
    body = {"model": "run:alice-run", "messages": [{"role": "user", "content": "hi"}]}
    refused = api.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer key-b"})
    assert refused.status_code == 403 and "another user" in refused.json()["error"]["message"]
    got = api.get("/v1/models/run:alice-run", headers={"Authorization": "Bearer key-b"})
    assert got.status_code == 404
    assert not any(key in record.getMessage() for record in caplog.records for key in ("key-a", "key-b"))


def test_v1_rate_limit_answers_429_with_retry_after(api: TestClient) -> None:
    codes = [api.get("/v1/models", headers={"Authorization": "Bearer key-a"}).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    limited = api.get("/v1/models", headers={"Authorization": "Bearer key-a"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limit_error" and "LMW_RATE_LIMIT" in limited.text
    assert api.get("/v1/models", headers={"Authorization": "Bearer key-b"}).status_code == 200  # per user


def test_v1_with_login_but_no_keys_is_closed(tmp_path: Path, users_spec: str) -> None:
    from components.openai_api import openai_routes

    app = FastAPI()
    app.include_router(openai_routes(AppContext.create(AppConfig(data_dir=tmp_path / "d", users=users_spec))))
    response = TestClient(app).get("/v1/models")
    assert response.status_code == 401 and "key" in response.json()["error"]["message"]


# ---- the gate on Gradio's routes ------------------------------------------------------------------------------------
def _gated_app(ctx: AppContext) -> TestClient:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from components.users_gate import UsersGate

    async def join(request: Request) -> JSONResponse:
        body = await request.json()
        user = request.app.tokens.get(request.cookies.get("access-token-c1", ""))
        return JSONResponse({"got": body["data"], "user": user})

    app = Starlette(routes=[Route("/gradio_api/queue/join", join, methods=["POST"])],
                    middleware=[Middleware(UsersGate, ctx=ctx)])
    app.tokens, app.cookie_id = {"tok-bob": "bob", "tok-alice": "alice"}, "c1"
    return TestClient(app)


def test_gate_refuses_another_users_run_in_any_event(ctx: AppContext) -> None:
    client = _gated_app(ctx)
    payload = {"data": ["hello", {"model": "run:alice-run"}], "fn_index": 3}
    as_bob = client.post("/gradio_api/queue/join", json=payload, cookies={"access-token-c1": "tok-bob"})
    assert as_bob.status_code == 403 and "another user" in as_bob.json()["detail"]
    as_alice = client.post("/gradio_api/queue/join", json=payload, cookies={"access-token-c1": "tok-alice"})
    assert as_alice.status_code == 200 and as_alice.json()["got"][0] == "hello"  # the body reaches the app
    unknown = {"data": ["run:no-such-run"]}
    assert client.post("/gradio_api/queue/join", json=unknown, cookies={"access-token-c1": "tok-bob"}).status_code \
        == 200  # the app itself says there is no such run


def test_gate_logs_a_bearer_key_in_as_its_user(ctx: AppContext) -> None:
    client = _gated_app(ctx)
    payload = {"data": ["run:bob-run"]}
    ok = client.post("/gradio_api/queue/join", json=payload, headers={"Authorization": "Bearer key-b"})
    assert ok.status_code == 200 and ok.json()["user"] == "bob"
    refused = client.post("/gradio_api/queue/join", json=payload, headers={"Authorization": "Bearer key-a"})
    assert refused.status_code == 403


# ---- secrets --------------------------------------------------------------------------------------------------------
def test_backend_keys_are_kept_0600_outside_runs_and_never_shown(ctx: AppContext) -> None:
    from components.backends_handlers import BackendsHandlers

    secret = "sk-very-secret-123"
    handlers = BackendsHandlers(ctx)
    table = handlers.add("far", "http://127.0.0.1:9/v1", secret)
    assert secret not in json.dumps(table.rows, default=str)
    files = [p for p in ctx.config.data_dir.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert len(files) == 1 and not files[0].is_relative_to(ctx.config.runs_dir)
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
    assert secret not in repr(ctx.backends.get("far")) and secret not in json.dumps(ctx.backends.get("far").view(),
                                                                                       default=str)
    fresh = AppContext.create(ctx.config)  # the app restarted: the endpoint and its key are back
    BackendsHandlers(fresh)
    assert fresh.backends.get("far").key == secret
    BackendsHandlers(fresh).remove("far")
    assert secret.encode() not in files[0].read_bytes()


def test_no_endpoint_returns_a_backend_key(tmp_path: Path, users_spec: str) -> None:
    import gradio as gr

    from components.backends import build_backends_section
    from components.openai_api import openai_routes

    secret = "sk-env-secret-456"
    config = AppConfig(data_dir=tmp_path / "data", backends=f"far=http://127.0.0.1:9/v1|{secret}",
                       api_keys="key-a:alice", users=users_spec)
    ctx = AppContext.create(config)
    with gr.Blocks() as demo:  # the section where keys are typed: its page config carries no key
        build_backends_section(ctx)
    assert "far" in json.dumps(demo.config, default=str) and secret not in json.dumps(demo.config, default=str)
    app = FastAPI()
    app.include_router(openai_routes(ctx))
    client = TestClient(app)
    assert secret not in client.get("/v1/models", headers={"Authorization": "Bearer key-a"}).text
    assert secret not in repr(config) and "key-a" not in repr(config)
    assert os.environ.get("LMW_BACKENDS", "") == "" or secret not in os.environ.get("LMW_BACKENDS", "")
