"""The one reader for uploaded tables (CSV, TSV, TXT, JSON, JSONL) and the writer for downloadable CSV/JSON.

Every problem with a file becomes an :class:`InputError` with one sentence that names it, and the row where
there is one. Rows are numbered as a spreadsheet shows them: the header is row 1, blank lines count; when a
quoted cell spans several lines the file's line number is given too. What the reader changed on the way
(encoding, padded or skipped rows, cut cells, row cap) is listed in ``Table.notes`` for the UI to show: each note
is English text that carries its keyed message (``note.msg``), rendered in the user's language by
``components.i18n.say``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from pipelines.errors import InputError
from pipelines.keyed_text import KeyedText
from pipelines.messages import Msg
from pipelines.table_sniff import (
    ENCODING_NAMES,
    check_not_binary,
    check_text,
    decode,
    size_msg,
    sniff_delimiter,
    unused_char,
)

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON "\\ud800" escapes: not UTF-8, break tokenizers and writers
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
MAX_COLUMNS = 1000
DELIMITER_NAMES = MappingProxyType({",": Msg("tables.delimiter.comma"), ";": Msg("tables.delimiter.semicolon"),
                                    "\t": Msg("tables.delimiter.tab"), "|": Msg("tables.delimiter.pipe")})
LABEL_NAMES = ("label", "labels", "class", "category", "target", "sentiment", "y", "tag")

csv.field_size_limit(2**31 - 1)  # long cells are cut with a note below instead of failing inside csv


@dataclass
class Table:
    """A parsed table: every cell a string (empty cells are ""), plus what the reader noticed.

    ``row_numbers[i]`` is the spreadsheet row (header = 1) of ``frame.iloc[i]``, for messages about a row.
    """

    frame: pd.DataFrame
    encoding: str
    delimiter: str | None
    notes: list[str] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def row_of(self, index: int) -> int:
        """Spreadsheet row number of the frame's ``index``-th row."""
        return self.row_numbers[index] if index < len(self.row_numbers) else index + 2


@dataclass
class _Parsed:
    header: list[str]
    rows: list[list[str]]
    row_numbers: list[int]
    total: int  # data rows in the file (before the row cap)


def read_table(
    path: str | Path, *, max_bytes: int = 50 * 2**20, max_rows: int = 50_000, max_cell_chars: int = 20_000
) -> Table:
    """Read a CSV/TSV/JSON/JSONL file into a :class:`Table` or raise :class:`InputError` with one clear sentence."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise InputError("tables.error.not_found") from None
    if path.is_dir():
        raise InputError("tables.error.folder")
    if size > max_bytes:
        raise InputError("tables.error.too_big", size=size_msg(size), limit=size_msg(max_bytes))
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError("tables.error.empty")
    check_not_binary(raw)
    text, encoding = decode(raw)
    if not text.strip():
        raise InputError("tables.error.empty")
    check_text(text)
    notes: list[str] = []
    if encoding not in ("utf-8", "utf-8-sig"):
        notes.append(KeyedText(Msg.of("tables.note.read_as", encoding=ENCODING_NAMES.get(encoding, encoding))))
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        parsed, delimiter = _parse_json(text, max_rows), None
    else:
        parsed, delimiter = _parse_delimited(text, suffix, max_rows, notes)
    if not parsed.rows:
        raise InputError("tables.error.no_rows")
    header = _clean_header(parsed.header, notes)
    if parsed.total > max_rows:
        notes.append(KeyedText(Msg.of("tables.note.row_cap", used=f"{max_rows:,}", total=f"{parsed.total:,}")))
    _cap_cells(parsed, header, max_cell_chars, notes)
    frame = pd.DataFrame(parsed.rows, columns=header).astype(str)
    return Table(frame=frame, encoding=encoding, delimiter=delimiter, notes=notes, row_numbers=parsed.row_numbers)


def _where(row: int, line: int) -> Msg:
    return Msg.of("tables.where.row", row=row) if row == line else Msg.of("tables.where.row_line", row=row, line=line)


def _delimiter_name(delimiter: str) -> Msg | str:
    return DELIMITER_NAMES.get(delimiter) or repr(delimiter)


def _parse_delimited(text: str, suffix: str, max_rows: int, notes: list[str]) -> tuple[_Parsed, str]:
    line_offset = 0
    hint = re.match(r"sep=(.)\r?\n", text)  # Excel's "sep=;" first line
    if hint:
        delimiter: str | None = hint.group(1)
        text, line_offset = text[hint.end():], 1
    else:
        delimiter, _ = sniff_delimiter(text, suffix)
    shown = delimiter or ("\t" if suffix == ".tsv" else ",")
    parse_with = delimiter or unused_char(text)
    _check_header_width(text, parse_with)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=parse_with)
    header: list[str] | None = None
    parsed = _Parsed([], [], [], 0)
    short: list[int] = []
    empty = row = 0
    line = last_line = line_offset
    cells: list[str] = []
    for cells in _records(reader, line_offset):
        row, line, last_line = row + 1, last_line + 1, reader.line_num + line_offset
        if not cells:
            continue
        if header is None:
            header, width = cells, len(cells)
            if width > MAX_COLUMNS:
                raise InputError("tables.error.too_many_columns", count=f"{width:,}", limit=f"{MAX_COLUMNS:,}")
            continue
        if len(cells) > width:
            if any(c.strip() for c in cells[width:]):
                raise InputError("tables.error.ragged_row", where=_where(row, line), cells=len(cells), width=width,
                                 delimiter=_delimiter_name(shown))
            cells = cells[:width]
        elif len(cells) < width:
            short.append(row)
            cells = cells + [""] * (width - len(cells))
        if not "".join(cells).strip():
            empty += 1
            continue
        parsed.total += 1
        if parsed.total <= max_rows:
            parsed.rows.append(cells)
            parsed.row_numbers.append(row)
    if header is None:
        raise InputError("tables.error.empty")
    if any("\n" in c or "\r" in c for c in cells):
        _check_closed_quote(text, parse_with, line - line_offset, row, line)
    parsed.header = header
    if short:
        shown_rows = ", ".join(str(r) for r in short[:5]) + (", ..." if len(short) > 5 else "")
        key = "tables.note.short_row" if len(short) == 1 else "tables.note.short_rows"
        notes.append(KeyedText(Msg.of(key, count=f"{len(short):,}", rows=shown_rows)))
    if empty:
        key = "tables.note.empty_row" if empty == 1 else "tables.note.empty_rows"
        notes.append(KeyedText(Msg.of(key, count=f"{empty:,}")))
    return parsed, shown


def _check_header_width(text: str, delimiter: str) -> None:
    """Refuse a header wider than ``MAX_COLUMNS`` before the csv module builds a list of all its cells (a
    one-line file of a million columns would take hundreds of MB): delimiters are counted in the first line."""
    start = len(text) - len(text.lstrip("\r\n"))
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    count = text.count(delimiter, start, end) + 1
    if count <= MAX_COLUMNS:
        return
    if text.find('"', start, end) < 0:  # no quoted cell: every delimiter separates two columns
        raise InputError("tables.error.too_many_columns", count=f"{count:,}", limit=f"{MAX_COLUMNS:,}")
    cut = start
    for _ in range(MAX_COLUMNS + 1):  # parse only the first MAX_COLUMNS + 1 delimiters' worth of the line
        cut = text.find(delimiter, cut, end) + 1 or end
    try:
        cells = next(csv.reader(io.StringIO(text[start:cut], newline=""), delimiter=delimiter), [])
    except csv.Error:
        return  # the full reader names the broken line
    if len(cells) > MAX_COLUMNS:
        raise InputError("tables.error.too_many_columns", count=f"{MAX_COLUMNS:,}+", limit=f"{MAX_COLUMNS:,}")


def _records(reader, line_offset: int):
    """The reader's records, with a csv.Error turned into a sentence naming the line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError("tables.error.csv_line", line=reader.line_num + line_offset, detail=str(exc)) from None


def _check_closed_quote(text: str, delimiter: str, start_line: int, row: int, line: int) -> None:
    """Refuse a last record that swallowed the rest of the file because a quote was never closed."""
    lines = io.StringIO(text, newline="").readlines()
    segment = "".join(lines[start_line - 1:])
    try:
        for _ in csv.reader(io.StringIO(segment, newline=""), delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        if "end of data" in str(exc):
            raise InputError("tables.error.unclosed_quote", where=_where(row, line)) from None


def _clean(text: str) -> str:
    """``text`` with lone surrogates (from JSON escapes such as ``"\\ud800"``) replaced by U+FFFD."""
    return LONE_SURROGATE.sub("\ufffd", text) if LONE_SURROGATE.search(text) else text


def _json_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _clean(value)
    return _clean(json.dumps(value, ensure_ascii=False))


def _load_json(text: str, line: int) -> object:
    """``json.loads`` with nesting too deep for the parser (``[[[[...``) refused as one keyed sentence."""
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError("hostile.error.json_too_deep", line=line) from None


def _parse_json(text: str, max_rows: int) -> _Parsed:
    """A JSON array of objects, ``{"data": [objects]}``, or JSON Lines (one object per line)."""
    stripped = text.strip()
    try:
        whole, failure = _load_json(stripped, 1), None
    except ValueError as exc:
        whole, failure = None, exc
    container = _records_in(whole)
    if container is not None:
        items, what = list(enumerate(container, start=1)), "tables.error.item_not_object"
    elif failure is not None and stripped.startswith("["):
        raise InputError("tables.error.json_invalid", line=getattr(failure, "lineno", "?"))
    else:
        items, what = [], "tables.error.line_not_object"
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append((number, _load_json(line, number)))
                except ValueError:
                    raise InputError("tables.error.json_line", line=number) from None
    header: dict[str, None] = {}
    for number, item in items:
        if not isinstance(item, dict):
            raise InputError(Msg.of(what, number=number))
        header.update(dict.fromkeys(_clean(str(k)) for k in item))
        if len(header) > MAX_COLUMNS:
            raise InputError("tables.error.too_many_fields", count=f"{len(header):,}+", limit=f"{MAX_COLUMNS:,}")
    names = list(header)
    parsed = _Parsed(names, [], [], len(items))
    for number, item in items[:max_rows]:
        values = {_clean(str(k)): v for k, v in item.items()}
        try:
            parsed.rows.append([_json_value(values.get(name)) for name in names])
        except RecursionError:
            raise InputError("hostile.error.json_too_deep", line=number) from None
        parsed.row_numbers.append(number)
    return parsed


def _records_in(data: object) -> list | None:
    """The records of a whole-file JSON document: a list, or the one list of objects inside an object."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1 and lists[0] and all(isinstance(item, dict) for item in lists[0]):
            return lists[0]
    return None


def _clean_header(names: list[str], notes: list[str]) -> list[str]:
    """Strip column names; name empty ones ``column_<n>`` and number repeats, with a note."""
    header, seen, renamed = [], set(), []
    for i, raw in enumerate(names, start=1):
        name = raw.strip() or f"column_{i}"
        base, k = name, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        if name != raw.strip():
            renamed.append(name)
        seen.add(name)
        header.append(name)
    if renamed:
        notes.append(KeyedText(Msg.of("tables.note.renamed", names=", ".join(renamed[:5]))))
    return header


def _cap_cells(parsed: _Parsed, header: list[str], limit: int, notes: list[str]) -> None:
    cut, first = 0, (0, "")
    for rows_index, cells in enumerate(parsed.rows):
        if max(map(len, cells)) <= limit:
            continue
        for col, value in enumerate(cells):
            if len(value) > limit:
                cells[col] = value[:limit]
                if not cut:
                    first = (parsed.row_numbers[rows_index], header[col])
                cut += 1
    if cut:
        key = "tables.note.cell_cut" if cut == 1 else "tables.note.cells_cut"
        notes.append(KeyedText(Msg.of(key, count=f"{cut:,}", limit=f"{limit:,}", row=first[0], column=first[1])))


def neutralise(value: object) -> object:
    """Make a cell safe to open in a spreadsheet: formula-looking text gets a leading ``'``.

    Policy (OWASP CSV injection): text starting with ``= + - @``, a tab or a carriage return -- or with
    ``= + - @`` after leading spaces/newlines -- is prefixed with ``'``. Exception: a cell that is a plain number
    (``-3.5``, ``+1``, ``-2e3``) is left as is so it stays numeric; a number cannot run as a formula.
    Non-string values (ints, floats) are never changed.
    """
    if not isinstance(value, str) or not value or NUMBER.fullmatch(value):
        return value
    if value.startswith(FORMULA_PREFIXES) or value.lstrip(" \n\r\t\f\v").startswith(FORMULA_PREFIXES[:4]):
        return "'" + value
    return value


def write_csv(frame: pd.DataFrame, path: str | Path, *, bom: bool = False) -> Path:
    """Write ``frame`` as UTF-8 CSV with formulas neutralised (``bom=True`` helps Excel open non-ASCII text).

    Lines end with ``\n``, or ``\r\n`` when a cell holds a carriage return (so that cell gets quoted).
    """
    path = Path(path)
    safe = frame.map(neutralise)
    safe.columns = [neutralise(str(c)) for c in safe.columns]
    # csv quotes a cell only for the line terminator's characters, so a lone "\r" needs "\r\n" endings.
    has_cr = any("\r" in str(v) for v in [*safe.columns, *safe.to_numpy().ravel()] if isinstance(v, str))
    safe.to_csv(path, index=False, encoding="utf-8-sig" if bom else "utf-8", lineterminator="\r\n" if has_cr else "\n")
    return path


def write_json(data: pd.DataFrame | list | dict, path: str | Path) -> Path:
    """Write a frame (as a list of records) or plain data as UTF-8 JSON."""
    path = Path(path)
    if isinstance(data, pd.DataFrame):
        data = data.to_dict(orient="records")
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return path


def summarize_columns(frame: pd.DataFrame) -> list[dict]:
    """Per column: name, filled cells, distinct values, whether all filled cells are numbers, mean length, examples."""
    summary = []
    for name in frame.columns:
        values = [v for v in frame[name].astype(str) if v.strip()]
        distinct = list(dict.fromkeys(values))
        summary.append({
            "name": str(name),
            "filled": len(values),
            "distinct": len(distinct),
            "numeric": bool(values) and all(NUMBER.fullmatch(v.strip()) for v in values),
            "mean_chars": round(sum(map(len, values)) / len(values), 1) if values else 0.0,
            "examples": [v[:60] for v in distinct[:3]],
        })
    return summary


def guess_columns(frame: pd.DataFrame, max_labels: int = 100) -> tuple[str | None, str | None]:
    """Best guesses for (text column, label column): the longest non-numeric text, and a label-named or
    few-valued column."""
    summary = summarize_columns(frame)
    texts = sorted((c for c in summary if not c["numeric"] and c["filled"]), key=lambda c: -c["mean_chars"])
    text = texts[0]["name"] if texts else (summary[0]["name"] if summary else None)
    rest = [c for c in summary if c["name"] != text and c["filled"]]
    named = [c for c in rest if c["name"].strip().lower() in LABEL_NAMES]
    few = sorted((c for c in rest if 2 <= c["distinct"] <= max_labels), key=lambda c: c["distinct"])
    label = (named or few or [None])[0]
    return text, label["name"] if label else None
