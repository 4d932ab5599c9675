"""Hostile uploads and inputs: zip/gzip bombs, a million columns, deeply nested JSON, invalid UTF-8 in every text
field, 10 MB texts into Generate/Classify/Summarize. Each gets one keyed refusal (or a keyed note where the house
rule is to cut a single text), nothing hangs, and memory stays bounded (tracemalloc peaks with generous bounds).
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import InputError, LimitError
from pipelines.tables import MAX_COLUMNS, read_table

MB = 2**20
BIG_TEXT = ("A long hostile prompt. " * (10 * MB // 23 + 1))[: 10 * MB]


@pytest.fixture
def uploads(tmp_path: Path, monkeypatch) -> Path:
    """Gradio's upload folder (where ``ctx.read_upload`` accepts files from)."""
    folder = tmp_path / "gradio" / "upload-1"
    folder.mkdir(parents=True)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    return folder


def peak_bytes(action: Callable[[], object]) -> tuple[object, int]:
    """(what ``action`` returned or raised, the peak of memory it allocated meanwhile)."""
    tracemalloc.start()
    try:
        try:
            outcome: object = action()
        except Exception as exc:  # noqa: BLE001 - the test looks at what was raised
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def refused(action: Callable[[], object], key: str, max_peak_mb: float) -> InputError:
    outcome, peak = peak_bytes(action)
    assert isinstance(outcome, InputError), repr(outcome)
    assert outcome.key == key, (outcome.key, outcome.render("en"))
    for lang in ("en", "zh-CN"):
        text = outcome.render(lang)
        assert text and key not in text and "Traceback" not in text
    assert peak < max_peak_mb * MB, f"{peak / MB:.0f} MB"
    return outcome


# ---- archives -------------------------------------------------------------------------------------------------------
def zip_bomb(path: Path, inflated_mb: int = 200) -> Path:
    """A small zip that inflates to ``inflated_mb`` MB of CSV-looking text."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("data.csv", "w") as member:
        member.write(b"text,label\n")
        block = b"a,b\n" * (MB // 4)
        for _ in range(inflated_mb):
            member.write(block)
    return path


def test_a_zip_bomb_is_refused_without_being_unpacked(ctx, uploads: Path) -> None:
    bomb = zip_bomb(uploads / "data.zip")
    assert bomb.stat().st_size < 2 * MB
    refused(lambda: ctx.read_upload(str(bomb)), "uploads.error.wrong_type", max_peak_mb=5)
    renamed = bomb.rename(uploads / "data.csv")  # a zip pretending to be a CSV
    error = refused(lambda: ctx.read_upload(str(renamed)), "tables.error.binary_kind", max_peak_mb=8)
    assert "ZIP" in error.render("en")


def test_a_gzip_bomb_named_jsonl_is_refused(ctx, uploads: Path) -> None:
    bomb = uploads / "rows.jsonl"
    bomb.write_bytes(gzip.compress(b'{"text": "x"}\n' * (100 * MB // 14), compresslevel=9))
    refused(lambda: ctx.read_upload(str(bomb)), "tables.error.binary_kind", max_peak_mb=8)


# ---- wide and deep tables -------------------------------------------------------------------------------------------
def test_a_million_column_csv_is_refused_in_bounded_memory(ctx, uploads: Path) -> None:
    path = uploads / "wide.csv"
    path.write_bytes(b",".join(b"c%d" % i for i in range(1_000_000)) + b"\n" + b"1," * 999_999 + b"1\n")
    size = path.stat().st_size
    error = refused(lambda: ctx.read_upload(str(path)), "tables.error.too_many_columns", max_peak_mb=4 * size / MB)
    assert "1,000,000" in error.render("en") and f"{MAX_COLUMNS:,}" in error.render("en")


def test_a_million_column_header_with_quotes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text('"a,b",' + ",".join(f'"c{i}"' for i in range(1_000_000)) + "\nx\n")
    error = refused(lambda: read_table(path), "tables.error.too_many_columns", max_peak_mb=60)
    assert f"{MAX_COLUMNS:,}+" in error.render("en")


def test_a_header_at_the_column_limit_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text(",".join(f'"c{i}"' for i in range(MAX_COLUMNS)) + "\n" + ",".join("1" * MAX_COLUMNS) + "\n")
    assert len(read_table(path).columns) == MAX_COLUMNS


def test_a_million_field_jsonl_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.jsonl"
    path.write_text(json.dumps({f"k{i}": i for i in range(200_000)}) + "\n")
    refused(lambda: read_table(path), "tables.error.too_many_fields", max_peak_mb=200)


@pytest.mark.parametrize(("name", "data", "line"), [
    ("deep.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n", 1),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, 1),
    ("deep_field.jsonl", b'{"text": "ok"}\n{"text": "ok"}\n{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", 3),
    ("deep_dict.json", b'{"data": [' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"]}", 1),
])
def test_deeply_nested_json_is_refused_naming_the_line(tmp_path: Path, name: str, data: bytes, line: int) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    error = refused(lambda: read_table(path), "hostile.error.json_too_deep", max_peak_mb=30)
    assert f"line {line}" in error.render("en") and f"第 {line} 行" in error.render("zh-CN")


def test_nesting_the_parser_can_read_becomes_json_text_in_the_cell(tmp_path: Path) -> None:
    path = tmp_path / "nested.jsonl"
    path.write_text(json.dumps({"text": "hi", "meta": [[[[1]]]]}) + "\n")
    assert read_table(path).frame["meta"][0] == "[[[[1]]]]"


# ---- invalid text -------------------------------------------------------------------------------------------------
BAD_BYTES = st.binary(min_size=1, max_size=6).filter(lambda b: b.strip(b"\r\n\"',;\t|{}[]:\\") == b)
TEXT_FORMATS = ("csv", "tsv", "txt", "jsonl", "json")


def _table_bytes(kind: str, header: list[bytes], cells: list[bytes]) -> bytes:
    if kind in ("csv", "txt", "tsv"):
        sep = b"\t" if kind == "tsv" else b","
        return sep.join(header) + b"\n" + sep.join(cells) + b"\n" + sep.join(cells[::-1]) + b"\n"
    record = b"{" + b", ".join(b'"' + h + b'": "' + c + b'"' for h, c in zip(header, cells, strict=True)) + b"}"
    return b"[" + record + b"]" if kind == "json" else record + b"\n" + record + b"\n"


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(TEXT_FORMATS), junk=st.lists(BAD_BYTES, min_size=4, max_size=4),
       where=st.lists(st.booleans(), min_size=4, max_size=4))
def test_invalid_utf8_in_any_text_field_reads_or_is_refused_with_a_key(tmp_path_factory, kind: str,
                                                                        junk: list[bytes], where: list[bool]) -> None:
    """Header names and cells carry arbitrary bytes (invalid UTF-8 most of the time): the reader gives a table whose
    every text is valid Unicode (with a keyed note when it guessed an encoding) or one keyed refusal."""
    header = [b"te" + (junk[0] if where[0] else b"") + b"xt", b"la" + (junk[1] if where[1] else b"") + b"bel"]
    cells = [b"caf" + (junk[2] if where[2] else b"\xc3\xa9"), b"po" + (junk[3] if where[3] else b"") + b"s"]
    path = tmp_path_factory.mktemp("utf8") / f"bad.{kind}"
    path.write_bytes(_table_bytes(kind, header, cells))
    try:
        table = read_table(path)
    except InputError as exc:
        assert exc.key.startswith(("tables.", "hostile.")) and exc.key not in exc.render("zh-CN")
        return
    texts = [*table.columns, *table.frame.to_numpy().ravel().tolist(), *table.notes]
    for text in texts:
        str(text).encode("utf-8")  # no lone surrogates, nothing a writer or tokenizer chokes on
    if table.encoding not in ("utf-8", "utf-8-sig"):
        assert [n.msg.key for n in table.notes if hasattr(n, "msg")][:1] == ["tables.note.read_as"]


def test_json_escaped_lone_surrogates_become_replacement_characters(tmp_path: Path) -> None:
    path = tmp_path / "surrogates.jsonl"
    path.write_text('{"te\\udc00xt": "a\\ud800b", "label": "\\ud83d\\ude00"}\n')
    table = read_table(path)
    assert table.columns == ["te\ufffdxt", "label"]
    assert table.frame.iloc[0].tolist() == ["a\ufffdb", "\U0001f600"]
    from pipelines.tables import write_csv

    write_csv(table.frame, tmp_path / "out.csv")  # raised UnicodeEncodeError before the fix
    assert "a\ufffdb" in (tmp_path / "out.csv").read_text(encoding="utf-8")


# ---- 10 MB texts into the tabs' handlers ------------------------------------------------------------------------
def test_a_10_mb_prompt_is_refused_by_generate(ctx, tiny_root: Path) -> None:
    from components.generate_handlers import GenerateHandlers
    from pipelines.generation.settings import GenerationSettings

    handlers = GenerateHandlers(ctx)
    error = refused(lambda: list(handlers.stream("s1", str(tiny_root / "tiny-llama"), BIG_TEXT,
                                                 GenerationSettings(max_new_tokens=2, precision="float32"))),
                    "limits.text_too_long", max_peak_mb=40)
    assert isinstance(error, LimitError) and "10,485,760" in error.render("en")


def test_a_10_mb_text_is_cut_with_a_note_by_classify(ctx, tiny_root: Path) -> None:
    from components.classify_handlers import ClassifyHandlers

    handlers = ClassifyHandlers(ctx)
    outcome, peak = peak_bytes(lambda: handlers.predict(BIG_TEXT, "finetuned", str(tiny_root / "tiny-bert-cls"), "",
                                                        ""))
    assert not isinstance(outcome, Exception), repr(outcome)
    assert [n.key for n in outcome.notes][:1] == ["limits.text_cut"]
    assert "10,485,760" in outcome.notes[0].render("en") and "10,485,760" in outcome.notes[0].render("zh-CN")
    assert peak < 200 * MB, f"{peak / MB:.0f} MB"


def test_a_10_mb_text_is_cut_with_a_note_by_summarize(ctx, tiny_root: Path) -> None:
    from components.summarize_handlers import SummarizeHandlers

    handlers = SummarizeHandlers(ctx)
    outcome, peak = peak_bytes(lambda: handlers.summarize_text(BIG_TEXT, "extractive", str(tiny_root / "tiny-bert"),
                                                               3, 0, 64, ""))
    assert not isinstance(outcome, Exception), repr(outcome)
    summary, _scores, notes = outcome
    assert summary and len(summary) < ctx.limits.max_input_chars
    assert "limits.text_cut" in [n.key for n in notes]
    assert peak < 200 * MB, f"{peak / MB:.0f} MB"
