"""Chinese UI end to end: server messages follow Accept-Language, the zh-CN page shows no English label or raw key,
and the clickable examples of every tab give a result in one click."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from gradio_client import Client

from components.i18n import TRANSLATIONS, language_of

CJK = re.compile(r"[\u4e00-\u9fff]")
ZH = {"accept-language": "zh-CN,zh;q=0.9,en;q=0.8"}
LABELS = "label, button, th, [role=tab], [data-testid=block-info], [data-testid=block-label], .label-wrap span, h1, h2"


def _client(url: str, headers: dict | None = None):
    from gradio_client import Client

    return Client(url, verbose=False, headers=headers)


def _error(client, *args, api_name: str) -> str:
    with pytest.raises(Exception) as info:  # noqa: PT011 - gradio_client raises AppError with the message
        client.predict(*args, api_name=api_name)
    return str(info.value)


# ---- server-side messages ----------------------------------------------------------------------------------
def test_language_of_header_and_keyed_messages() -> None:
    from pipelines.errors import InputError
    from pipelines.messages import Msg

    assert language_of("zh-CN,zh;q=0.9") == "zh-CN" and language_of("zh-TW") == "zh-CN"
    assert language_of("en-US,zh;q=0.5") == "en" and language_of(None) == "en"
    error = InputError("classify.empty_text")
    assert str(error) == "Type or paste a text to classify." and CJK.search(error.render("zh-CN"))
    note = Msg.of("limits.text_cut", used="10", total="20")  # parameters fill both languages' templates
    assert "10" in note.render("en") and "20" in note.render("en") and "10" in note.render("zh-CN")


def test_api_errors_follow_accept_language(app_server, upload_dir: Path) -> None:
    zh, en = _client(app_server["url"], ZH), _client(app_server["url"])
    bad_hub = ("nobody-here/no-such-model-xyz", "auto", "auto")
    msg = _error(zh, *bad_hub, api_name="/load_model")
    assert "无法从 Hugging Face Hub 获取" in msg and "nobody-here/no-such-model-xyz" in msg
    assert "Could not get 'nobody-here/no-such-model-xyz'" in _error(en, *bad_hub, api_name="/load_model")
    empty_text = ("   ", "embeddings", "minilm-l6", "a, b", "This text is about {}.")
    assert "请输入或粘贴要分类的文本" in _error(zh, *empty_text, api_name="/classify")
    assert "Type or paste a text to classify." in _error(en, *empty_text, api_name="/classify")
    assert CJK.search(_error(zh, "", api_name="/extract_entities"))
    from gradio_client import handle_file

    empty = upload_dir / "empty.csv"
    empty.write_bytes(b"")
    msg = _error(zh, handle_file(str(empty)), "text", "", "embeddings", "minilm-l6", "a, b", "{}",
                 api_name="/classify_csv")
    assert "是空的" in msg, msg
    assert "请先上传" in _error(zh, None, "text", "", "embeddings", "minilm-l6", "a, b", "{}", api_name="/classify_csv")
    # a status message built on the server
    status = zh.predict("no-such-model-loaded", api_name="/unload_model")[0]
    assert status == "已卸载 0 个模型。"


# ---- the page in Chinese -----------------------------------------------------------------------------------
def _english_labels() -> set[str]:
    en, zh = TRANSLATIONS["en"], TRANSLATIONS["zh-CN"]
    return {v for k, v in en.items() if v != zh[k] and re.search("[A-Za-z]{3}", v)}


def _visible_label_texts(page) -> list[str]:
    return page.eval_on_selector_all(
        LABELS,
        "els => els.filter(e => e.offsetParent !== null).map(e => e.innerText.trim()).filter(Boolean)",
    )


@pytest.mark.browser
def test_chinese_page_has_no_english_labels_or_raw_keys(browser, app_server, artifacts_dir: Path) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(app_server["url"], wait_until="load")
    page.locator("#app-title").wait_for(timeout=60_000)
    assert page.locator("#app-title").inner_text().strip() == TRANSLATIONS["zh-CN"]["app.title"]
    tabs = page.get_by_role("tab")
    tabs.first.wait_for(timeout=60_000)
    top_titles = [TRANSLATIONS["zh-CN"][k] for k in ("tab.generate", "tab.models", "tab.attention", "tab.finetune",
                                                     "tab.classify", "tab.summarize", "tab.extract")]
    keys, english = set(TRANSLATIONS["en"]), _english_labels()
    seen: set[str] = set()
    shots = artifacts_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for title in top_titles:
        page.get_by_role("tab", name=title, exact=True).click()
        page.wait_for_timeout(400)
        texts = _visible_label_texts(page)
        seen.update(texts)
        raw = [x for x in texts if x in keys]
        assert not raw, f"{title}: raw translation keys visible: {raw}"
        left = [x for x in texts if x in english]
        assert not left, f"{title}: English labels visible in the Chinese UI: {left}"
        assert "__i18n__" not in page.locator("body").inner_text(), f"{title}: a raw translation marker is visible"
        if title == top_titles[0]:
            page.screenshot(path=str(shots / "generate-zh.png"))
    assert set(top_titles) <= seen, "every top-level tab title is Chinese"
    assert sum(bool(CJK.search(x)) for x in seen) > 50
    context.close()
    assert not errors, errors


# ---- examples: one click to a result on every tab ------------------------------------------------------------
def _click_example(page, text: str) -> None:
    """Click the visible example (a table row for several inputs, a button for one) showing ``text``."""
    page.locator("tr.tr-body:visible, button.gallery-item:visible", has_text=text).first.click()


@pytest.mark.browser
def test_examples_give_a_result_in_one_click(page, artifacts_dir: Path) -> None:
    from tests.conftest import open_tab

    shots = artifacts_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    body = page.locator("body")

    open_tab(page, "Models")
    _click_example(page, "minilm-l6")
    page.locator("#models-status").get_by_text("Loaded").wait_for(timeout=120_000)
    assert "minilm-l6" in page.locator("#models-status").inner_text()
    page.screenshot(path=str(shots / "examples-models.png"))

    open_tab(page, "Classify")
    _click_example(page, "Add the butter")
    top = page.locator("#classify-top textarea")
    page.wait_for_function("el => el.value === 'cooking'", arg=top.element_handle(), timeout=120_000)
    page.screenshot(path=str(shots / "examples-classify.png"))

    open_tab(page, "Summarize")
    _click_example(page, "今天上午")
    out = page.locator("#summarize-output textarea")
    page.wait_for_function("el => /[\\u4e00-\\u9fff]/.test(el.value)", arg=out.element_handle(), timeout=120_000)
    assert out.input_value() in page.locator("#summarize-text textarea").input_value()  # extractive: kept sentences
    page.screenshot(path=str(shots / "examples-summarize.png"))

    open_tab(page, "Extract")
    _click_example(page, "European Space Agency")
    page.locator("#extract-entities-output").get_by_text("French Guiana").first.wait_for(timeout=120_000)
    page.screenshot(path=str(shots / "examples-extract.png"))

    open_tab(page, "Attention")
    _click_example(page, "The cat sat on the mat")
    note = page.locator("#attention-note")
    note.get_by_text("layers x").wait_for(timeout=120_000)
    assert "minilm-l6" in note.inner_text()
    page.frame_locator("#attention-head-view iframe.bertviz-frame").locator("#vis svg").wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "examples-attention.png"))

    open_tab(page, "Fine-tune")
    _click_example(page, "sentiment")
    page.locator("#ft-report").get_by_text("20", exact=False).first.wait_for(timeout=60_000)
    assert "positive" in body.inner_text()
    page.screenshot(path=str(shots / "examples-finetune.png"))

    open_tab(page, "Generate")
    _click_example(page, "Write a haiku about the sea.")
    page.locator("#generate-stats").get_by_text("stop reason").wait_for(timeout=180_000)  # a translated stat name
    # chat mode: the answer is in the chat after the prompt (the plain output box is for completion mode)
    page.wait_for_function("n => document.querySelector('#generate-chat').innerText.trim().length > n",
                           arg=len("Write a haiku about the sea.") + 10, timeout=10_000)
    page.screenshot(path=str(shots / "examples-generate.png"))
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "readme.png"))  # the viewport (1400x1000): copied to assets/screenshot.png


# ---- every tab in Chinese: no English word left ------------------------------------------------------------
# Words that stay in Latin letters in the Chinese UI: model and product names, units, formats and technical tokens
# (compared in lower case). Anything else in ASCII letters (2+ letters, no digits) is an untranslated word.
ALLOWED_WORDS = frozenset((
    "language",  # the language switch's label stays bilingual ("语言 / Language"): the way back for a non-reader
    "pypi", "rope",
    "lm", "llm", "llms", "lora", "qlora", "peft", "csv", "tsv", "json", "jsonl", "txt", "xlsx", "rouge", "bleu",
    "gpu", "cpu", "cuda", "mps", "api", "hub", "hugging", "face", "space", "spaces", "huggingface", "gguf", "bert",
    "minilm", "smollm", "llama", "gpt", "qwen", "instruct", "spacy", "mnli", "nli", "ner", "bertviz", "plotly",
    "safetensors", "pytorch", "torch", "transformers", "gradio", "utf", "gbk", "bom", "id", "url", "http", "https",
    "mb", "kb", "gb", "ms", "top", "sdpa", "eager", "fp", "bf", "int", "float", "tf", "idf", "bm", "pdf", "png",
    "english", "lmw", "pip", "onnx", "js", "html", "xml", "sql", "zip",
    "openai",  # the protocol's name (OpenAI-compatible backends)
    "cpp",  # llama.cpp, the engine's name
    "auto",  # the literal value typed into a setting (LoRA target modules: "auto")
))
WORD = re.compile(r"[A-Za-z0-9]+")  # a word is a run of letters and digits; only letters-only ones count
PATH_LIKE = re.compile(r"\S*[/\\]\S*")  # folders, hub ids (owner/model), URLs
ENV_LIKE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")  # LMW_CHAT_MODEL, HF_HUB_OFFLINE
FILE_LIKE = re.compile(r"\S+\.(?:csv|tsv|json|jsonl|txt|gguf|safetensors|py)\b", re.I)
SNAKE_LIKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")  # module and setting names: c_attn, lora_alpha

VISIBLE_TEXT_JS = """() => {
  // code, user content (text boxes) and clickable examples' content are data, not UI strings
  const skip = 'code, pre, script, style, textarea, .gallery-item, .tr-body, .paginate, svg title';
  const shown = el => el && el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true});
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !shown(el) || el.closest(skip)) continue;
    out.push(node.textContent.trim());
  }
  for (const el of document.querySelectorAll('input[role=combobox], input[type=text], textarea, input:not([type])')) {
    if (!shown(el)) continue;
    if (el.getAttribute('role') === 'combobox' && el.value) out.push(el.value);  // a dropdown's chosen label
    if (!el.value && el.placeholder) out.push(el.placeholder);
  }
  return out;
}"""


def _identifiers() -> set[str]:
    """Embedded model names and package names: shown as they are (they are identifiers, not words)."""
    from pipelines.models.embedded import EMBEDDED

    upstream = {"SmolLM2-135M-Instruct", "all-MiniLM-L6-v2", "en_core_web_sm"}  # the embedded models' own names
    return upstream | {x for spec in EMBEDDED.values() for x in (spec.name, spec.pip_name, spec.package, spec.subpath)}


def _run_names(app_server) -> set[str]:
    """Runs that earlier tests trained on the shared app: their ids and names are the user's data, not UI text."""
    runs = Client(app_server["url"], verbose=False).predict(api_name="/runs")
    return {str(value) for run in runs for value in (run.get("id"), run.get("name"), run.get("reference")) if value}


def english_words(texts: list[str], identifiers: set[str] = frozenset()) -> set[str]:
    """ASCII-letter words (2+ letters) in ``texts`` that are not allowed in the Chinese UI."""
    found = set()
    for value in texts:
        for ident in sorted(identifiers, key=len, reverse=True):
            value = value.replace(ident, " ")
        for pattern in (PATH_LIKE, ENV_LIKE, FILE_LIKE, SNAKE_LIKE):
            value = pattern.sub(" ", value)
        found.update(w for w in WORD.findall(value)
                     if len(w) >= 2 and w.isalpha() and w.isascii() and w.lower() not in ALLOWED_WORDS)
    return found


def test_english_word_finder_flags_words_and_spares_names() -> None:
    found = english_words(["加载 Loaded smollm2-135m-instruct", "LMW_CHAT_MODEL Qwen/Qwen2.5-0.5B-Instruct",
                           "精度 float32 bfloat16 GPU 上", "data.csv 文件", "/tmp/models/tiny-bert", "状态 ready"],
                          _identifiers())
    assert found == {"Loaded", "ready"}


def _open_accordions(page) -> None:
    for header in page.locator("button.label-wrap:visible:not(.open)").all():
        with contextlib.suppress(Exception):  # a header that moved away while others opened
            header.click(timeout=2_000)


@pytest.mark.browser
def test_every_tab_in_chinese_has_no_english_words(browser, app_server, artifacts_dir: Path) -> None:
    """#18.6: every tab (and sub-tab, with accordions opened) of the zh-CN page, walked in a browser."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_server["url"], wait_until="load")
    page.locator("#app-title").wait_for(timeout=60_000)
    titles = [TRANSLATIONS["zh-CN"][k] for k in ("tab.generate", "tab.models", "tab.attention", "tab.finetune",
                                                 "tab.classify", "tab.summarize", "tab.extract", "tab.evaluate")]
    identifiers, offending = _identifiers() | _run_names(app_server), {}
    try:
        for title in titles:
            page.get_by_role("tab", name=title, exact=True).click()
            page.wait_for_timeout(500)
            texts = page.evaluate(VISIBLE_TEXT_JS)
            subtabs = [t for t in page.locator("[role=tab]:visible").all_inner_texts() if t not in titles]
            for sub in subtabs:
                page.get_by_role("tab", name=sub, exact=True).first.click()
                page.wait_for_timeout(300)
                _open_accordions(page)
                page.wait_for_timeout(300)
                texts += page.evaluate(VISIBLE_TEXT_JS)
            _open_accordions(page)
            page.wait_for_timeout(300)
            texts += page.evaluate(VISIBLE_TEXT_JS)
            words = english_words(texts, identifiers)
            if words:
                offending[title] = sorted(words)
        page.screenshot(path=str(artifacts_dir / "zh-walk-last-tab.png"), full_page=True)
    finally:
        context.close()
    assert not offending, "English words in the Chinese UI, per tab: " + "; ".join(
        f"{tab}: {', '.join(words)}" for tab, words in offending.items())
