"""Sign in with Hugging Face on a Space (``LMW_HF_OAUTH``, issue #20): the Hugging Face username of the request's
OAuth session is the user for owner checks, quotas and files, exactly like an ``LMW_USERS`` login; ``LMW_ADMINS``
names admins; the login button is there only with OAuth on. The hub cannot be reached offline, so the OAuth session
is made by a test route behind Starlette's real SessionMiddleware (what Gradio's callback stores in it)."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import pytest
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.testclient import TestClient

from components.users import user_of
from components.users_files import oauth_username, profile_user, user_files_middleware
from pipelines.config import AppConfig
from pipelines.user_files import output_folder
from pipelines.users import Users, users_of

PROFILE = {"name": "Alice A", "preferred_username": "hf-alice", "profile": "https://huggingface.co/hf-alice",
           "picture": "https://huggingface.co/avatar.png"}


class FakeCtx:
    def __init__(self, users: Users) -> None:
        self.users = users


def session_of(name: str, expires_in: float = 3600) -> dict:
    """What Gradio's OAuth callback stores in the session (``oauth_info``)."""
    return {"oauth_info": {"access_token": "t", "scope": "openid profile", "expires_at": int(time.time() + expires_in),
                           "userinfo": {**PROFILE, "preferred_username": name}}}


def test_oauth_and_admins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMW_HF_OAUTH", "1")
    monkeypatch.setenv("LMW_ADMINS", "hf-carol, hf-dan")
    monkeypatch.delenv("LMW_USERS", raising=False)
    users = users_of(AppConfig.from_env())
    assert users.enabled and users.oauth and not users.passwords  # owners are checked; no password form
    assert users.is_admin("hf-carol") and users.is_admin("hf-dan") and not users.is_admin("hf-alice")
    monkeypatch.delenv("LMW_HF_OAUTH")
    assert not users_of(AppConfig.from_env()).enabled  # off by default: single-user as before


def test_profile_and_session_map_to_the_hugging_face_username() -> None:
    assert profile_user(gr.OAuthProfile(PROFILE)) == "hf-alice"
    assert profile_user(None) is None
    assert oauth_username(session_of("hf-alice")) == "hf-alice"
    assert oauth_username(session_of("hf-alice", expires_in=-10)) is None  # expired: signed out
    assert oauth_username({}) is None and oauth_username(None) is None
    ctx = FakeCtx(Users.parse(oauth=True))
    assert user_of(ctx, gr.Request(username="hf-alice")) == "hf-alice"
    assert user_of(ctx, gr.Request()) == ""  # not signed in: sees no one's data
    assert user_of(FakeCtx(Users()), gr.Request(username="hf-alice")) is None  # OAuth off: nothing is checked


@pytest.fixture
def oauth_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Gradio app with the gate and a session middleware; ``/test-login/<name>`` signs that HF user in."""
    from gradio.routes import App

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    ctx = FakeCtx(Users.parse(oauth=True, admins="hf-carol"))
    with gr.Blocks() as demo:
        gr.Textbox()
    app = App.create_app(demo, app_kwargs={"middleware": user_files_middleware(ctx)})

    @app.get("/test-login/{name}")
    def login(name: str, request: Request) -> dict:
        request.session.update(session_of(name))
        return {}

    app.add_middleware(SessionMiddleware, secret_key="test-secret")  # as gradio.oauth.attach_oauth does
    return app


def signed_in(app, name: str | None) -> TestClient:
    client = TestClient(app)
    if name:
        assert client.get(f"/test-login/{name}").status_code == 200
    return client


def test_a_signed_in_session_is_gradios_logged_in_user(oauth_app) -> None:
    assert signed_in(oauth_app, "hf-alice").get("/gradio_api/user").json() == "hf-alice"  # request.username
    assert signed_in(oauth_app, "hf-bob").get("/gradio_api/user").json() == "hf-bob"
    assert signed_in(oauth_app, None).get("/gradio_api/user").json() is None


def test_hugging_face_users_download_only_their_own_files(oauth_app) -> None:
    path = output_folder("hf-alice", "lmw-batch-") / "out.csv"
    path.write_text("text,label\n", encoding="utf-8")
    url = f"/gradio_api/file={path}"
    assert signed_in(oauth_app, "hf-alice").get(url).status_code == 200
    assert signed_in(oauth_app, "hf-carol").get(url).status_code == 200  # LMW_ADMINS
    assert signed_in(oauth_app, "hf-bob").get(url).status_code == 403
    assert signed_in(oauth_app, None).get(url).status_code == 403


def test_the_login_button_is_there_only_with_oauth(tmp_path: Path, shared_cache_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio.routes

    import app
    from pipelines.context import AppContext

    attached = []  # Gradio adds its OAuth routes for an app with a login button (off a Space: a mocked login)
    monkeypatch.setattr(gradio.routes, "attach_oauth", attached.append)

    def buttons(**kwargs) -> list:
        config = AppConfig(data_dir=tmp_path / "data", cache_dir=shared_cache_dir, **kwargs)
        demo = app.build_app(AppContext.create(config))
        return [b for b in demo.blocks.values() if isinstance(b, gr.LoginButton)]

    assert buttons() == [] and attached == []
    assert len(buttons(hf_oauth=True, admins="hf-carol")) == 1 and len(attached) == 1
    config = AppConfig(data_dir=tmp_path / "data", cache_dir=shared_cache_dir, hf_oauth=True)
    assert app.launch_kwargs(config, AppContext.create(config))["auth"] is None  # no password form with OAuth


@pytest.mark.browser
def test_signed_in_page_shows_the_hf_user_and_handlers_see_it(browser, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path in a browser: the session made by (a stand-in for) Gradio's OAuth callback, the login button's
    label, and a handler's ``user_of(ctx, request)`` through the queue."""
    import gradio.routes
    from playwright.sync_api import expect

    from components.users_files import login_button
    from tests.app_server import free_port

    def attach(app) -> None:  # what gradio.oauth.attach_oauth does on a Space, minus the hub
        @app.get("/test-login/{name}")
        def login(name: str, request: Request) -> dict:
            request.session.update(session_of(name))
            return {}

        app.add_middleware(SessionMiddleware, secret_key="test-secret")

    monkeypatch.setattr(gradio.routes, "attach_oauth", attach)
    ctx = FakeCtx(Users.parse(oauth=True))

    def who_is(request: gr.Request) -> str:
        return user_of(ctx, request) or "nobody"

    with gr.Blocks() as demo:
        button = login_button(ctx)
        who = gr.Textbox(elem_id="who")
        demo.load(who_is, None, who)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, app_kwargs={"middleware": user_files_middleware(ctx)})
    context = browser.new_context(locale="en-US")
    try:
        url = f"http://127.0.0.1:{port}/"
        page = context.new_page()
        page.goto(url)
        expect(page.locator("#who textarea")).to_have_value("nobody", timeout=30_000)
        expect(page.locator("#hf-login")).to_contain_text("Sign in with Hugging Face")
        assert context.request.get(url + "test-login/hf-alice").ok
        page.goto(url)
        expect(page.locator("#who textarea")).to_have_value("hf-alice", timeout=30_000)
        expect(page.locator("#hf-login")).to_contain_text("Logout (hf-alice)")
        assert button is not None
    finally:
        context.close()
        demo.close()
