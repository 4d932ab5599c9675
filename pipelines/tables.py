"""The one reader for uploaded tables (CSV, TSV, JSONL) and the writer for downloadable CSV/JSON.

First version: encoding and delimiter detection; hardened for messy files in the reliability issue.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.errors import InputError

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
ENCODINGS = ("utf-8-sig", "utf-8", "gb18030", "latin-1")


@dataclass
class Table:
    """A parsed table: every cell a string (empty cells are ""), plus what the reader noticed."""

    frame: pd.DataFrame
    encoding: str
    delimiter: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]


def _decode(raw: bytes) -> tuple[str, str]:
    for enc in ENCODINGS:
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise InputError("The file's text encoding could not be recognised; save it as UTF-8.")


def read_table(path: str | Path, *, max_bytes: int = 50 * 2**20, max_rows: int = 50_000) -> Table:
    """Read a CSV/TSV/JSONL file into a :class:`Table` or raise :class:`InputError` with one clear sentence."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"The file is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB.")
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError("The file is empty.")
    if b"\x00" in raw[:4096]:
        raise InputError("The file looks binary, not a text table (CSV, TSV or JSONL).")
    text, encoding = _decode(raw)
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise InputError(f"Line {number} is not valid JSON.") from None
        frame, delimiter = pd.DataFrame(rows), None
    else:
        sample = text[:20_000]
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, ValueError) as exc:
            raise InputError(f"The file could not be read as a table: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise InputError("The file has a header but no data rows.")
    notes = []
    if len(frame) > max_rows:
        notes.append(f"Only the first {max_rows} of {len(frame)} rows are used.")
        frame = frame.head(max_rows)
    frame = frame.fillna("").astype(str)
    frame.columns = [str(c).strip() for c in frame.columns]
    return Table(frame=frame, encoding=encoding, delimiter=delimiter, notes=notes)


def neutralise(value: object) -> object:
    """Prefix spreadsheet-formula-looking strings with a quote so they open as text."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as UTF-8 CSV with formulas neutralised."""
    path = Path(path)
    safe = frame.map(neutralise)
    safe.columns = [neutralise(c) for c in safe.columns]
    safe.to_csv(path, index=False, encoding="utf-8")
    return path
