"""The header's language switch: the cookie, the page middleware, server messages and the browser end to end."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import gradio as gr
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import app
from components.i18n import LANG_COOKIE, TRANSLATIONS, cookie_lang, request_lang
from components.language import LanguageMiddleware, inject, override_script
from pipelines.errors import InputError
from tests.conftest import app_errors

PAGE = "<!doctype html><html lang='en'><head>\n<meta charset='utf-8'><title>x</title></head><body>hi</body></html>"
SCRIPT = re.compile(r'<head><script data-lmw-lang="([^"]+)">')
TAB_KEYS = [key for key, _ in app.TABS]
EMPTY_TEXT_ERROR = "Type or paste a text to classify."


# ---- the middleware ------------------------------------------------------------------------------------------
def _page(request: Request):
    if "json" in request.query_params:
        return JSONResponse({"html": PAGE})
    if "missing" in request.query_params:
        return HTMLResponse(PAGE, status_code=404)
    if "stream" in request.query_params:
        return StreamingResponse(iter([PAGE[:30].encode(), PAGE[30:].encode()]), media_type="text/html")
    return HTMLResponse(PAGE)


@pytest.fixture(scope="module")
def client() -> TestClient:
    routes = [Route("/", _page, methods=["GET", "HEAD", "POST"]), Route("/other", _page)]
    return TestClient(Starlette(routes=routes, middleware=app.launch_kwargs()["app_kwargs"]["middleware"]))


def _get(client: TestClient, path: str = "/", cookie: str | None = None, method: str = "GET"):
    client.cookies.clear()
    response = client.request(method, path, headers={"cookie": cookie} if cookie else {})
    assert response.status_code in (200, 404)
    return response


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_page_gets_the_language_script_for_a_chosen_language(client: TestClient, lang: str) -> None:
    for path in ("/", "/?stream=1"):
        response = _get(client, path, f"theme=dark; {LANG_COOKIE}={lang}")
        body = response.content
        assert SCRIPT.findall(body.decode()) == [lang]  # once, right after <head>
        assert int(response.headers["content-length"]) == len(body) == len(PAGE.encode() + override_script(lang))
        assert body.replace(override_script(lang), b"") == PAGE.encode()  # nothing else changed


@pytest.mark.parametrize(
    "cookie",
    [
        None,
        "",
        f"{LANG_COOKIE}=auto",
        f"{LANG_COOKIE}=fr",
        f"{LANG_COOKIE}=zh-CN<x>",
        f'{LANG_COOKIE}="</script><script>alert(1)"',
        f"other_{LANG_COOKIE}=zh-CN",
    ],
)
def test_no_choice_or_an_unknown_value_leaves_the_page_alone(client: TestClient, cookie: str | None) -> None:
    response = _get(client, "/", cookie)
    assert response.content == PAGE.encode() and "data-lmw-lang" not in response.text
    assert int(response.headers["content-length"]) == len(PAGE.encode())


def test_other_paths_methods_and_responses_pass_through(client: TestClient) -> None:
    zh = f"{LANG_COOKIE}=zh-CN"
    assert _get(client, "/other", zh).content == PAGE.encode()  # not the page
    assert _get(client, "/", zh, method="POST").content == PAGE.encode()
    assert _get(client, "/", zh, method="HEAD").content == b""
    assert _get(client, "/?json=1", zh).json() == {"html": PAGE}  # not HTML
    missing = _get(client, "/?missing=1", zh)
    assert missing.status_code == 404 and missing.content == PAGE.encode()


def test_root_path_and_only_whitelisted_values_reach_the_page() -> None:
    middleware = LanguageMiddleware(app=None)  # type: ignore[arg-type]
    cookie = [(b"cookie", f"{LANG_COOKIE}=zh-CN".encode())]
    assert (
        middleware._page_lang(
            {"type": "http", "method": "GET", "path": "/sub/", "root_path": "/sub", "headers": cookie}
        )
        == "zh-CN"
    )
    assert (
        middleware._page_lang(
            {"type": "http", "method": "GET", "path": "/sub/x", "root_path": "/sub", "headers": cookie}
        )
        is None
    )
    assert middleware._page_lang({"type": "websocket", "path": "/", "headers": cookie}) is None
    with pytest.raises(ValueError):
        override_script("</script>")
    assert inject(b"<html><body>no head</body></html>", "en") == b"<html><body>no head</body></html>"
    assert inject(b"<header><HEAD class=a>", "en").startswith(b'<header><HEAD class=a><script data-lmw-lang="en">')


# ---- server-side language ------------------------------------------------------------------------------------
def _starlette_request(headers: dict[str, str]) -> gr.Request:
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    return gr.Request(Request({"type": "http", "method": "POST", "path": "/", "headers": raw, "query_string": b""}))


def test_the_cookie_wins_over_accept_language() -> None:
    assert cookie_lang(f"a=1; {LANG_COOKIE}=zh-CN") == "zh-CN" and cookie_lang(f"{LANG_COOKIE}=de") is None
    assert cookie_lang(None) is None and cookie_lang(f'{LANG_COOKIE}="en"') == "en"
    for make in (lambda h: gr.Request(headers=h), _starlette_request):
        assert request_lang(make({"accept-language": "en-US", "cookie": f"{LANG_COOKIE}=zh-CN"})) == "zh-CN"
        assert request_lang(make({"accept-language": "zh-CN,zh", "cookie": f"{LANG_COOKIE}=en"})) == "en"
        assert request_lang(make({"accept-language": "zh-CN,zh", "cookie": f"{LANG_COOKIE}=auto"})) == "zh-CN"
        assert request_lang(make({"accept-language": "zh-CN,zh", "cookie": f"{LANG_COOKIE}=xx"})) == "zh-CN"
        assert request_lang(make({"accept-language": "en-US"})) == "en"
    # a request whose cookies were parsed separately (no Cookie header left)
    assert request_lang(gr.Request(headers={"accept-language": "en"}, cookies={LANG_COOKIE: "zh-CN"})) == "zh-CN"
    assert request_lang(gr.Request(headers={"accept-language": "zh"}, cookies={LANG_COOKIE: "nope"})) == "zh-CN"
    assert request_lang(None) == "en"


# ---- the running app ------------------------------------------------------------------------------------------
def test_the_running_app_serves_the_page_in_the_chosen_language(app_server) -> None:
    for cookie, expected in ((f"{LANG_COOKIE}=zh-CN", ["zh-CN"]), (None, []), (f"{LANG_COOKIE}=auto", [])):
        request = urllib.request.Request(app_server["url"], headers={"Cookie": cookie} if cookie else {})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            assert int(response.headers["content-length"]) == len(body)
        assert SCRIPT.findall(body.decode()) == expected
        assert b"window.gradio_config" in body


# ---- in the browser ---------------------------------------------------------------------------------------------
def _choose(page, name: str) -> None:
    """Pick ``name`` in the header's language selector and wait for the page it reloads."""
    page.locator("#language-select input").click()
    with page.expect_navigation(wait_until="load", timeout=60_000):
        page.get_by_role("option", name=name).click()
    _wait_ready(page)


def _wait_ready(page) -> None:
    page.locator("#app-title").wait_for(timeout=60_000)
    page.get_by_role("tab").first.wait_for(timeout=60_000)
    page.wait_for_function("() => document.querySelector('#language-select input').value !== ''", timeout=30_000)


def _top_titles(page) -> list[str]:
    return [x.strip() for x in page.get_by_role("tab").all_inner_texts()][: len(TAB_KEYS)]


def _all_tab_titles(page, lang: str) -> set[str]:
    """Every visible tab title (nested ones included), opening each top-level tab in turn."""
    seen: set[str] = set()
    for key in TAB_KEYS:
        page.get_by_role("tab", name=TRANSLATIONS[lang][key], exact=True).click()
        page.wait_for_timeout(250)
        seen.update(t.strip() for t in page.locator("[role=tab]:visible").all_inner_texts())
    return seen


def _classify_error(page, lang: str) -> str:
    page.get_by_role("tab", name=TRANSLATIONS[lang]["tab.classify"], exact=True).click()
    page.locator("#classify-text textarea").fill("   ")
    page.locator("#classify-run").click()
    toast = page.get_by_test_id("toast-text").last
    toast.wait_for(timeout=30_000)
    message = toast.inner_text().strip()
    page.get_by_test_id("toast-close").last.click()
    return message


def _lang_cookie(page) -> str | None:
    return next((c["value"] for c in page.context.cookies() if c["name"] == LANG_COOKIE), None)


@pytest.mark.browser
def test_switching_to_chinese_changes_every_label_and_server_messages(page, artifacts_dir: Path) -> None:
    from tests.test_i18n_ui import _english_labels, _visible_label_texts

    en, zh = TRANSLATIONS["en"], TRANSLATIONS["zh-CN"]
    assert _top_titles(page) == [en[k] for k in TAB_KEYS]  # Auto with an English browser
    assert page.locator("#language-select input").input_value() == en["language.auto"]

    _choose(page, "简体中文")
    assert _lang_cookie(page) == "zh-CN"
    assert page.locator("#app-title").inner_text().strip() == zh["app.title"]
    assert _top_titles(page) == [zh[k] for k in TAB_KEYS]
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.locator("#language-select input").input_value() == "简体中文"
    # Showing the saved choice must not count as a new choice (no reload loop).
    page.evaluate("window.__lmw_same_page = true")
    page.wait_for_timeout(1500)
    assert page.evaluate("window.__lmw_same_page === true")

    page.reload(wait_until="load")
    _wait_ready(page)
    english, tab_texts = _english_labels(), set(zh.values())
    titles = _all_tab_titles(page, "zh-CN")
    assert {zh[k] for k in TAB_KEYS} <= titles
    assert titles <= tab_texts, f"tab titles that are not Chinese translations: {titles - tab_texts}"
    labels = _visible_label_texts(page)
    assert not [x for x in labels if x in english], "English labels after switching to Chinese"
    assert _classify_error(page, "zh-CN") == InputError("classify.empty_text").render("zh-CN") != EMPTY_TEXT_ERROR
    shots = artifacts_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "language-switch-zh.png"))

    _choose(page, "English")
    assert _lang_cookie(page) == "en"
    assert _top_titles(page) == [en[k] for k in TAB_KEYS]
    assert _classify_error(page, "en") == EMPTY_TEXT_ERROR

    _choose(page, "简体中文")
    _choose(page, zh["language.auto"])  # Auto: back to the browser's language (English here)
    assert _lang_cookie(page) is None
    assert _top_titles(page) == [en[k] for k in TAB_KEYS]
    assert page.locator("#language-select input").input_value() == en["language.auto"]


@pytest.mark.browser
def test_english_choice_beats_a_chinese_browser(browser, app_server) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    en, zh = TRANSLATIONS["en"], TRANSLATIONS["zh-CN"]
    try:
        page.goto(app_server["url"], wait_until="load")
        _wait_ready(page)
        assert _top_titles(page) == [zh[k] for k in TAB_KEYS]  # Auto follows the browser
        _choose(page, "English")
        assert _top_titles(page) == [en[k] for k in TAB_KEYS]
        assert page.locator("#language-select input").input_value() == "English"
        # the browser still sends Accept-Language: zh-CN; the choice decides the server's language too
        assert _classify_error(page, "en") == EMPTY_TEXT_ERROR
        _choose(page, en["language.auto"])
        assert _lang_cookie(page) is None
        assert _top_titles(page) == [zh[k] for k in TAB_KEYS]
    finally:
        context.close()
    assert not app_errors(errors), f"browser console errors: {errors}"  # choosing a language reloads the page
