"""Every UI string has an English and a Simplified Chinese translation, and no label is hard-coded."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from components.i18n import LANGUAGES, TRANSLATIONS, load_translations, text

COMPONENTS = Path(__file__).resolve().parent.parent / "components"
TEXT_KWARGS = {"label", "info", "placeholder", "title"}
TEXT_POSITIONAL = {"Button", "Markdown", "Tab", "Accordion", "DownloadButton", "UploadButton", "ClearButton"}
KEY = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_]+)+$")  # later parts may name data labels (extract.label.GPE)


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _used_keys() -> dict[str, str]:
    keys = {}
    for file in COMPONENTS.glob("*.py"):
        for call in _calls(ast.parse(file.read_text(encoding="utf-8"))):
            if _name(call) == "t" and call.args and isinstance(call.args[0], ast.Constant):
                keys[call.args[0].value] = file.name
    return keys


def test_both_languages_have_the_same_keys() -> None:
    en, zh = set(TRANSLATIONS["en"]), set(TRANSLATIONS["zh-CN"])
    assert LANGUAGES == ("en", "zh-CN")
    assert en == zh, f"only in en: {sorted(en - zh)}; only in zh-CN: {sorted(zh - en)}"


def test_no_translation_is_empty_and_chinese_strings_are_chinese() -> None:
    for lang, table in TRANSLATIONS.items():
        empty = [k for k, v in table.items() if not str(v).strip()]
        assert not empty, f"{lang}: empty strings for {empty}"
    english = TRANSLATIONS["en"]
    untranslated = [k for k, v in TRANSLATIONS["zh-CN"].items() if v == english.get(k) and re.search("[a-z]{4}", v)]
    assert not untranslated, f"zh-CN strings identical to English: {untranslated}"


def test_every_key_used_in_the_ui_is_translated() -> None:
    missing = {k: f for k, f in _used_keys().items() if k not in TRANSLATIONS["en"]}
    assert not missing, f"keys used but not translated: {missing}"


def test_no_hard_coded_labels_in_components() -> None:
    found = []
    for file in COMPONENTS.glob("*.py"):
        for call in _calls(ast.parse(file.read_text(encoding="utf-8"))):
            for kw in call.keywords:
                if kw.arg in TEXT_KWARGS and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    found.append(f"{file.name}:{call.lineno} {kw.arg}={kw.value.value!r}")
            if _name(call) in TEXT_POSITIONAL and call.args:
                arg = call.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.strip():
                    found.append(f"{file.name}:{call.lineno} {_name(call)}({arg.value!r})")
    assert not found, "use t('key') instead of literal UI strings:\n" + "\n".join(found)


def test_server_side_text_falls_back_to_english_and_formats(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"en": {"a.b": "Hi {name}"}, "zh-CN": {"a.b": "你好 {name}"}}', encoding="utf-8")
    merged = load_translations(tmp_path)
    assert merged["zh-CN"]["a.b"] == "你好 {name}"
    assert text("app.title", "zh-CN") == TRANSLATIONS["zh-CN"]["app.title"]
    assert text("app.title", "fr") == TRANSLATIONS["en"]["app.title"]
    assert all(KEY.match(k) for k in TRANSLATIONS["en"]), "keys look like 'tab.name'"
