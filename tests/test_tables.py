"""The table reader on messy files (every fixture generated here) and the formula-safe CSV writer."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipelines.errors import InputError
from pipelines.tables import guess_columns, neutralise, read_table, summarize_columns, write_csv, write_json

ZH_ROWS = [("这部电影非常好看，演员很出色", "正面"), ("服务太差了，不会再来", "负面"), ("质量一般般，价格还行", "中性")]
DE_ROWS = [("Müller aus Köln", "gut"), ("Die Straße ist schön", "gut"), ("Grüße, Bär", "schlecht")]


def write(tmp_path: Path, name: str, data: bytes | str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def csv_text(rows, header=("text", "label"), delimiter=",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def error(path: Path, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        read_table(path, **kwargs)
    return str(info.value)


# ---- encodings ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"])
def test_chinese_text_in_each_encoding(tmp_path, encoding):
    table = read_table(write(tmp_path, "zh.csv", csv_text(ZH_ROWS), encoding))
    assert table.columns == ["text", "label"]  # no BOM glued to the first name
    assert table.frame.values.tolist() == [list(r) for r in ZH_ROWS]


def test_short_gbk_file_is_not_mistaken_for_latin1(tmp_path):
    table = read_table(write(tmp_path, "zh.csv", "名字,城市\n张三,北京\n", "gbk"))
    assert table.encoding == "gb18030"
    assert table.frame.values.tolist() == [["张三", "北京"]]
    assert any("GB18030" in note for note in table.notes)


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_western_text_is_not_mistaken_for_gbk(tmp_path, encoding):
    rows = DE_ROWS + [("informação", "pt"), ("niño, señor", "es"), ("C'est très bien", "fr")]
    table = read_table(write(tmp_path, "de.csv", csv_text(rows), encoding))
    assert table.encoding in ("cp1252", "latin-1")
    assert table.frame.values.tolist() == [list(r) for r in rows]


@pytest.mark.parametrize("text", ["name,city\nMüller,Köln\n", "text,label\ninformação,1\n", "a\nÇa va\n"])
def test_tiny_latin1_files(tmp_path, text):
    assert read_table(write(tmp_path, "x.csv", text, "latin-1")).frame.iloc[0, 0] == text.split("\n")[1].split(",")[0]


def test_utf16_without_bom(tmp_path):
    table = read_table(write(tmp_path, "u.txt", "text\tlabel\n你好 wörld\t1\n", "utf-16-le"))
    assert (table.encoding, table.frame.values.tolist()) == ("utf-16-le", [["你好 wörld", "1"]])


def test_ragged_row_in_a_gbk_file_is_named(tmp_path):
    rows = "text,label\n" + "".join(f"{a},{b}\n" for a, b in ZH_ROWS) + "你好,世界,多余\n"
    assert error(write(tmp_path, "zh.csv", rows, "gbk")).startswith("Row 5 has 3 cells")


def test_windows_1252_punctuation(tmp_path):
    table = read_table(write(tmp_path, "q.csv", "text,price\n“Quoted” – it’s fine,5 €\n", "cp1252"))
    assert table.frame.values.tolist() == [["“Quoted” – it’s fine", "5 €"]]


def test_cyrillic_windows_1251_is_recognised(tmp_path):
    rows = [("привет мир", "да"), ("это очень хорошо", "нет"), ("плохой товар", "нет")]
    table = read_table(write(tmp_path, "ru.csv", csv_text(rows, ("текст", "метка")), "cp1251"))
    assert table.columns == ["текст", "метка"]
    assert table.frame.values.tolist() == [list(r) for r in rows]


# ---- delimiters, quoting, shape ------------------------------------------------------------------------------------
def test_semicolon_with_decimal_commas(tmp_path):
    table = read_table(write(tmp_path, "s.csv", "name;price\napple;3,5\npear;2,25\n"))
    assert (table.delimiter, table.frame.values.tolist()) == (";", [["apple", "3,5"], ["pear", "2,25"]])


def test_tab_with_commas_in_text(tmp_path):
    table = read_table(write(tmp_path, "t.txt", "text\tlabel\nhello, world\tpos\nfoo; bar\tneg\n"))
    assert (table.delimiter, table.frame["text"].tolist()) == ("\t", ["hello, world", "foo; bar"])


def test_excel_sep_hint_line(tmp_path):
    table = read_table(write(tmp_path, "x.csv", "sep=;\na;b\n1,5;2\n"))
    assert (table.columns, table.frame.values.tolist()) == (["a", "b"], [["1,5", "2"]])


def test_quoted_newlines_and_quotes(tmp_path):
    rows = [("line one\nline two, with comma", "a"), ('she said "hi"', "b"), ("crlf\r\ninside", "c")]
    table = read_table(write(tmp_path, "q.csv", csv_text(rows)))
    assert table.frame.values.tolist() == [list(r) for r in rows]
    assert table.row_numbers == [2, 3, 4]


def test_ragged_row_is_named(tmp_path):
    message = error(write(tmp_path, "r.csv", "text,label\nfine,a\nhello, world,b\n"))
    assert message.startswith("Row 3 has 3 cells but the header has 2") and "comma" in message


def test_ragged_row_after_a_multiline_cell_names_row_and_line(tmp_path):
    message = error(write(tmp_path, "r.csv", 'a,b\n1,"x\ny"\n2,3,4\n'))
    assert message.startswith("Row 3 (line 4 of the file) has 3 cells")


def test_blank_lines_count_as_spreadsheet_rows(tmp_path):
    assert error(write(tmp_path, "r.csv", "a,b\n1,2\n\n3,4,5\n")).startswith("Row 4 ")


def test_short_rows_are_padded_with_a_note_and_empty_rows_skipped(tmp_path):
    table = read_table(write(tmp_path, "s.csv", "a,b,c\n1,2,3\n4,5\n,,\n7,8,9,,\n"))
    assert table.frame.values.tolist() == [["1", "2", "3"], ["4", "5", ""], ["7", "8", "9"]]
    assert table.row_numbers == [2, 3, 5]
    assert any("rows 3" in n or "row 3" in n for n in table.notes)
    assert any("only empty cells" in n for n in table.notes)


def test_unclosed_quote_is_named(tmp_path):
    message = error(write(tmp_path, "u.csv", 'a,b\n1,ok\n2,"5 inch screen\n3,z\n4,w\n'))
    assert message.startswith("Row 3 opens a quoted cell")


def test_one_column_file_keeps_commas(tmp_path):
    table = read_table(write(tmp_path, "one.csv", "text\nhello, world\nno comma\n"))
    assert (table.columns, table.frame["text"].tolist()) == (["text"], ["hello, world", "no comma"])


def test_numeric_cells_stay_strings(tmp_path):
    table = read_table(write(tmp_path, "n.csv", "text,label\na,01\nb,2\nc,-3.50\n"))
    assert table.frame["label"].tolist() == ["01", "2", "-3.50"]


def test_empty_and_repeated_column_names_are_renamed(tmp_path):
    table = read_table(write(tmp_path, "h.csv", " text ,,text\na,b,c\n"))
    assert table.columns == ["text", "column_2", "text_2"]
    assert any("renamed" in n for n in table.notes)


# ---- refusals ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [b"", b"   \n\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"])
def test_empty_files(tmp_path, data):
    assert error(write(tmp_path, "e.csv", data)) == "The file is empty."


def test_header_only(tmp_path):
    assert error(write(tmp_path, "h.csv", "text,label\n")) == "The file has a header row but no data rows."
    assert "no data rows" in error(write(tmp_path, "h2.csv", "text,label\n,\n"))


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_garbage(tmp_path, seed):
    rng = random.Random(seed)
    data = bytes(rng.randrange(0 if seed == 0 else 1, 256) for _ in range(5000))  # seed 1: no NUL bytes
    assert "binary" in error(write(tmp_path, "b.csv", data))


@pytest.mark.parametrize(("magic", "word"), [(b"PK\x03\x04", "Excel"), (b"%PDF-1.7", "PDF"), (b"\x89PNG\r\n", "PNG")])
def test_known_binary_formats_are_named(tmp_path, magic, word):
    assert word in error(write(tmp_path, "x.csv", magic + b"\x00" * 100))


@pytest.mark.parametrize("page", ["<!DOCTYPE html>\n<html><body><table><tr><td>a</td></tr></table>",
                                  "  <html lang='en'><head><title>x</title></head>", "<table><tr><td>1</td></tr>"])
def test_html_saved_as_csv(tmp_path, page):
    assert "web page" in error(write(tmp_path, "page.csv", page))


def test_size_limit(tmp_path):
    path = write(tmp_path, "big.csv", csv_text([("x" * 100, "a")] * 50))
    assert error(path, max_bytes=1000).endswith("the limit is 1000 bytes.")


def test_missing_file(tmp_path):
    assert "not found" in error(tmp_path / "nope.csv")


def test_too_many_columns(tmp_path):
    assert "columns" in error(write(tmp_path, "w.csv", ",".join(f"c{i}" for i in range(1500)) + "\n" + "1\n"))


# ---- caps --------------------------------------------------------------------------------------------------------
def test_long_cells_are_cut_with_a_note(tmp_path):
    table = read_table(write(tmp_path, "l.csv", csv_text([("short", "a"), ("y" * 300_000, "b")])), max_cell_chars=1000)
    assert len(table.frame.iloc[1, 0]) == 1000
    assert any("row 3, column 'text'" in n for n in table.notes)


def test_row_cap_with_a_note(tmp_path):
    table = read_table(write(tmp_path, "r.csv", csv_text([(f"t{i}", "a") for i in range(30)])), max_rows=10)
    assert len(table.frame) == 10
    assert "Only the first 10 of 30 rows are used." in table.notes


# ---- JSON --------------------------------------------------------------------------------------------------------
def test_jsonl_and_json_array(tmp_path):
    lines = '{"text": "a", "label": 1}\n\n{"text": "b", "label": null, "extra": [1, 2], "ok": true}\n'
    table = read_table(write(tmp_path, "d.jsonl", lines))
    assert table.columns == ["text", "label", "extra", "ok"]
    assert table.frame.values.tolist() == [["a", "1", "", ""], ["b", "", "[1, 2]", "true"]]
    assert table.row_numbers == [1, 3]
    array = read_table(write(tmp_path, "d.json", '{"data": [{"text": "x"}, {"text": "y"}]}'))
    assert array.frame["text"].tolist() == ["x", "y"]


def test_bad_json_lines(tmp_path):
    assert error(write(tmp_path, "d.jsonl", '{"a": 1}\n{"a": 2,\n')) == "Line 2 is not valid JSON."
    assert error(write(tmp_path, "e.jsonl", '{"a": 1}\n[1, 2]\n')).startswith("Line 2 is not a JSON object")


# ---- writer ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=x", "'\t=x"),
     ("\r=x", "'\r=x"), ("  =HYPERLINK(1)", "'  =HYPERLINK(1)"), ("\n@x", "'\n@x"), ("-", "'-"),
     ("+44 20 7946 0000", "'+44 20 7946 0000"),
     ("-3.5", "-3.5"), ("+1", "+1"), ("-2e3", "-2e3"), ("hello", "hello"), ("a=b", "a=b"), ("", ""), (-3, -3)],
)
def test_neutralise(value, expected):
    assert neutralise(value) == expected


def test_write_csv_neutralises_cells_and_header_and_reads_back(tmp_path):
    frame = pd.DataFrame({"=name": ["=HYPERLINK(\"x\")", "-3.5", "ok"], "n": [1, -2, 3]})
    path = write_csv(frame, tmp_path / "out.csv")
    table = read_table(path)
    assert table.columns == ["'=name", "n"]
    assert table.frame.values.tolist() == [["'=HYPERLINK(\"x\")", "1"], ["-3.5", "-2"], ["ok", "3"]]
    assert write_csv(frame, tmp_path / "bom.csv", bom=True).read_bytes().startswith(b"\xef\xbb\xbf")


def test_write_csv_keeps_carriage_returns_inside_cells(tmp_path):
    frame = pd.DataFrame({"text": ["one\rtwo", "three\nfour", "plain"], "n": ["1", "2", "3"]})
    assert read_table(write_csv(frame, tmp_path / "cr.csv")).frame.values.tolist() == frame.values.tolist()


def test_write_json_and_summaries(tmp_path):
    frame = pd.DataFrame({"text": ["a long sentence here", "another long one"], "label": ["1", "2"]})
    assert '"text": "a long sentence here"' in write_json(frame, tmp_path / "o.json").read_text(encoding="utf-8")
    summary = {c["name"]: c for c in summarize_columns(frame)}
    assert summary["label"]["numeric"] and not summary["text"]["numeric"]
    assert guess_columns(frame) == ("text", "label")


# ---- property: any frame of strings round-trips through CSV -------------------------------------------------------
NAME = st.text(st.characters(categories=("L", "Nd")), min_size=1, max_size=6)
PRINTABLE = st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S", "Zs"))
CELL_UTF = st.text(st.one_of(PRINTABLE, st.sampled_from(',;\t|"\n\r \'')), max_size=12)
HANZI = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5).filter(lambda c: _in(c, "gb2312"))
WORD_ZH = st.text(HANZI, min_size=2, max_size=4)
ASCII_WORD = st.text(st.sampled_from("abcXYZ019.!?-"), min_size=1, max_size=5)
WORD_LATIN = st.lists(
    st.tuples(st.sampled_from("bcdfglmnrst"), st.sampled_from("aeiouàáâäçèéêëíîïñóôöúûüÿ")), min_size=1, max_size=4
).map(lambda parts: "".join(a + b for a, b in parts))
SEPARATOR = st.sampled_from([" ", ", ", "; ", "\t", "\n", '"', " | "])


def _in(ch: str, codec: str) -> bool:
    try:
        ch.encode(codec)
        return True
    except UnicodeEncodeError:
        return False


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def words(word) -> st.SearchStrategy[str]:
    return st.lists(st.tuples(st.one_of(word, ASCII_WORD), SEPARATOR), max_size=4).map(
        lambda parts: "".join(w + s for w, s in parts).rstrip(" \n\t")
    )


CELLS = {"utf-8": CELL_UTF, "utf-8-sig": CELL_UTF, "utf-16": CELL_UTF, "gbk": words(WORD_ZH),
         "latin-1": words(WORD_LATIN), "cp1252": words(WORD_LATIN)}


NAMES = {"utf-8": NAME, "utf-8-sig": NAME, "utf-16": NAME, "gbk": st.one_of(WORD_ZH, ASCII_WORD.map("n{}".format)),
         "latin-1": WORD_LATIN, "cp1252": WORD_LATIN}


@st.composite
def frames(draw) -> tuple[pd.DataFrame, str, str, str, int]:
    encoding = draw(st.sampled_from(sorted(CELLS)))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    names = draw(st.lists(NAMES[encoding].filter(lambda n: n == n.strip() and _in(n, encoding)),
                          min_size=1, max_size=4, unique=True))
    rows = draw(st.lists(st.lists(CELLS[encoding], min_size=len(names), max_size=len(names)), min_size=1, max_size=6))
    rows = [r for r in rows if any(c.strip() for c in r)] or [["x"] * len(names)]
    # csv.writer quotes a cell only for the line terminator's characters: "\n" endings need QUOTE_ALL for "\r".
    newline, quoting = draw(st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\r\n", csv.QUOTE_ALL),
                                             ("\n", csv.QUOTE_ALL)]))
    return pd.DataFrame(rows, columns=names), encoding, delimiter, newline, quoting


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames())
def test_round_trip_any_frame(tmp_path, case):
    frame, encoding, delimiter, newline, quoting = case
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    writer.writerow(frame.columns)
    writer.writerows(frame.values.tolist())
    data = out.getvalue().encode(encoding)
    if not encoding.startswith("utf"):
        assume(not _is_utf8(data))  # bytes that happen to be valid UTF-8 are read as UTF-8, by design
    path = write(tmp_path, "round.csv", data)
    table = read_table(path)
    assert table.columns == list(frame.columns)
    assert table.frame.values.tolist() == frame.values.tolist()
    if len(frame.columns) > 1:
        assert table.delimiter == delimiter


# ---- keyed messages: every note and error has a key, an English and a Chinese text ---------------------------------
CJK = __import__("re").compile(r"[\u4e00-\u9fff]")
KEYLIKE = __import__("re").compile(r"(tables|uploads)\.[a-z_]+\.[a-z_]+")


def test_notes_are_english_text_that_carries_a_translatable_key(tmp_path):
    table = read_table(write(tmp_path, "zh.csv", "名字,城市,城市\n张三,北京\n,,\n李四,上海,x\n", "gbk"))
    keys = {note.msg.key for note in table.notes}
    assert {"tables.note.read_as", "tables.note.short_row", "tables.note.empty_row", "tables.note.renamed"} <= keys
    assert any(note.startswith("Read as GB18030/GBK") for note in table.notes)  # still plain English text
    assert all(CJK.search(note.render("zh-CN")) for note in table.notes)


def test_errors_are_keyed_and_render_in_chinese(tmp_path):
    with pytest.raises(InputError) as info:
        read_table(write(tmp_path, "r.csv", "text,label\nfine,a\nhello, world,b\n"))
    assert info.value.key == "tables.error.ragged_row"
    assert info.value.render("zh-CN").startswith("第 3 行有 3 个单元格") and "逗号" in info.value.render("zh-CN")
    with pytest.raises(InputError) as info:
        read_table(write(tmp_path, "x.csv", b"PK\x03\x04rest"))
    assert "Excel" in str(info.value) and "工作簿" in info.value.render("zh-CN")


def test_every_key_in_the_table_and_upload_code_has_both_texts():
    import ast

    from pipelines.messages import texts

    root = Path(__file__).resolve().parent.parent / "pipelines"
    keys = set()
    for name in ("tables.py", "table_sniff.py", "uploads.py"):
        for node in ast.walk(ast.parse((root / name).read_text(encoding="utf-8"))):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and KEYLIKE.fullmatch(value):
                keys.add(value)
    assert len(keys) > 40
    for lang in ("en", "zh-CN"):
        missing = sorted(k for k in keys if k not in texts()[lang])
        assert not missing, f"{lang}: {missing}"
