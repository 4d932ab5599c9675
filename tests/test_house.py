"""House rules, checked on the source: no module-level mutable state in pipelines/ and components/, builders
stay short, files stay small, and every message key used in the code has an English and a Chinese text."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pipelines.messages import LANGUAGES, texts

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob("pipelines/**/*.py"), *ROOT.glob("components/**/*.py"), ROOT / "app.py"])
MUTABLE_CALLS = {"dict", "list", "set", "OrderedDict", "defaultdict", "deque", "Lock", "RLock", "Event",
                 "ThreadPoolExecutor", "Queue", "WeakValueDictionary"}
IMMUTABLE_CALLS = {"Path", "TypeVar", "frozenset", "MappingProxyType", "getLogger", "compile", "namedtuple",
                   "I18n", "field", "partial", "NewType", "Msg"}
ERROR_CLASSES = {"WorkbenchError", "InputError", "ModelLoadError", "BusyError", "LimitError"}
KEY = re.compile(r"^[a-z0-9_]+(\.[a-zA-Z0-9_]+)+$")


def _parsed() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in SOURCES]


def _is_mutable(value: ast.expr) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp):
        return True
    if isinstance(value, ast.Call):
        fn = value.func
        name = getattr(fn, "id", None) or getattr(fn, "attr", "")
        if name in IMMUTABLE_CALLS or name.isupper():
            return False
        return name in MUTABLE_CALLS or name[:1].isupper()
    return False


def test_no_module_level_mutable_state() -> None:
    """Module globals are constants (UPPER_CASE tuples, frozen objects); state belongs on the AppContext."""
    found = []
    for path, tree in _parsed():
        for node in tree.body:
            targets, value = [], None
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            for target in targets:
                name = getattr(target, "id", "")
                if name and not name.startswith("__") and _is_mutable(value) and name not in {"I18N"}:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not found, f"module-level mutable state: {found}"


def test_component_functions_stay_short_and_files_small() -> None:
    long_functions, big_files = [], []
    for path, tree in _parsed():
        rel = path.relative_to(ROOT)
        if path.read_text(encoding="utf-8").count("\n") > 400:
            big_files.append(str(rel))
        if rel.parts[0] != "components":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 80:
                    long_functions.append(f"{rel}:{node.lineno} {node.name} ({length} lines)")
    assert not long_functions, long_functions
    assert not big_files, big_files


def _message_keys() -> dict[str, str]:
    """``{key: where}`` for every constant key passed to an error class, ``Msg``/``Msg.of``, ``text`` or ``t``."""
    keys: dict[str, str] = {}
    for path, tree in _parsed():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            fn = node.func
            name = getattr(fn, "id", None) or getattr(fn, "attr", "")
            owner = getattr(getattr(fn, "value", None), "id", "")
            first = node.args[0]
            if isinstance(first, ast.JoinedStr) and name in ERROR_CLASSES:  # an f-string: a sentence, not a key
                keys[ast.unparse(first)] = f"{path.relative_to(ROOT)}:{node.lineno}"
                continue
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            if name in ERROR_CLASSES or name == "Msg" or (name == "of" and owner == "Msg") or name in {"text", "t"}:
                keys[first.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return keys


def test_errors_carry_keys() -> None:
    """Errors are raised with a locale key and parameters, never with an English sentence."""
    sentences = {key: where for key, where in _message_keys().items() if not KEY.match(key)}
    assert not sentences, f"messages without a key: {sentences}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_key_has_a_text(lang: str) -> None:
    table = texts()[lang]
    missing = {key: where for key, where in _message_keys().items() if KEY.match(key) and key not in table}
    assert not missing, f"keys without a {lang} text: {missing}"


def test_locale_files_agree_on_keys_and_placeholders() -> None:
    from pipelines.messages import template_fields

    en, zh = texts()["en"], texts()["zh-CN"]
    assert set(en) == set(zh), f"only English: {sorted(set(en) - set(zh))}; only Chinese: {sorted(set(zh) - set(en))}"
    differ = [key for key in en if template_fields(en[key]) != template_fields(zh[key])]
    assert not differ, f"placeholders differ between English and Chinese: {differ}"
