"""Byte-level checks for uploaded tables: what kind of file it is, its text encoding and its delimiter.

Used by :mod:`pipelines.tables`; every refusal is an :class:`InputError` with one clear sentence.

Encoding cascade (decided by hand because statistical detectors guess badly on the short files people upload):
BOM (UTF-8/UTF-16/UTF-32) -> strict UTF-8 -> GB18030 when the bytes look like GBK Chinese -> charset-normalizer
when the bytes are clearly not Western European -> cp1252 -> Latin-1.
GBK vs Latin-1: Chinese GBK/GB2312 text has its high bytes in pairs that are both >= 0xA1; Latin-1 text has
isolated accented letters whose following byte is ASCII. When a decoding is valid in both, we ask GB2312 (the
common subset) and whether the Chinese characters sit alone between Latin letters, as misread accents do.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from types import MappingProxyType

from pipelines.errors import InputError
from pipelines.messages import Msg

# (signature, what it is) for binary files people upload by mistake.
MAGIC = (
    (b"PK\x03\x04", Msg("tables.binary.xlsx")),
    (b"\xd0\xcf\x11\xe0", Msg("tables.binary.xls")),
    (b"%PDF", Msg("tables.binary.pdf")),
    (b"\x1f\x8b", Msg("tables.binary.gzip")),
    (b"\x89PNG", Msg("tables.binary.png")),
    (b"\xff\xd8\xff", Msg("tables.binary.jpeg")),
    (b"GIF8", Msg("tables.binary.gif")),
    (b"SQLite format 3", Msg("tables.binary.sqlite")),
    (b"PAR1", Msg("tables.binary.parquet")),
)
BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
HTML_START = re.compile(r"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body|table|meta|\?xml)\b", re.I | re.S)
DELIMITERS = (",", "\t", ";", "|")
SNIFF_CHARS = 64_000
SNIFF_RECORDS = 200
HEURISTIC_CHARS = 500_000  # the encoding heuristics look at this much of a file
# Encodings charset-normalizer may pick when the bytes are neither UTF-8, GBK Chinese nor Western European.
OTHER_ENCODINGS = ("gb18030", "big5", "shift_jis", "euc_kr", "cp1251", "cp1250", "cp1253", "cp1254", "cp1255", "cp1256")
ENCODING_NAMES = MappingProxyType({
    "utf-8-sig": "UTF-8 with BOM", "utf-8": "UTF-8", "gb18030": "GB18030/GBK", "cp1252": "Windows-1252",
    "latin-1": "Latin-1", "utf-16": "UTF-16", "utf-32": "UTF-32",
})


def human_size(n: int) -> str:
    """``n`` bytes as a short size for messages: 512 bytes, 3.2 KB, 51.0 MB."""
    return size_msg(n).render("en")


def size_msg(n: int) -> Msg:
    """``n`` bytes as a translatable short size (512 bytes / 512 字节, 3.2 KB, 51.0 MB)."""
    if n < 1024:
        return Msg.of("tables.size.bytes", n=n)
    if n < 2**20:
        return Msg.of("tables.size.kb", n=f"{n / 1024:.1f}")
    return Msg.of("tables.size.mb", n=f"{n / 2**20:.1f}")


def check_not_binary(raw: bytes) -> None:
    """Refuse known binary formats by their first bytes."""
    for magic, what in MAGIC:
        if raw.startswith(magic):
            raise InputError("tables.error.binary_kind", what=what)


def _looks_gbk(text: str) -> bool:
    """Whether ``text`` (bytes decoded as GB18030) reads as Chinese rather than misread Latin accents."""
    wide = [i for i, ch in enumerate(text) if ord(ch) > 127]
    if not wide:
        return False
    common = sandwiched = 0
    for i in wide:
        ch = text[i]
        try:
            ch.encode("gb2312")
            common += 1
        except UnicodeEncodeError:
            pass
        before = text[i - 1] if i > 0 else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if before.isascii() and before.isalpha() and after.isascii() and after.isalpha():
            sandwiched += 1
    return common >= 0.9 * len(wide) and sandwiched < 0.5 * len(wide)


def _looks_western(text: str) -> bool:
    """Whether a cp1252/Latin-1 decoding reads as Western text: accented letters mostly next to ASCII.

    Cyrillic, Japanese or Korean bytes read this way give long runs of accented letters and symbols.
    """
    wide = [i for i, ch in enumerate(text) if ord(ch) > 127]
    if not wide:
        return True
    inside = sum(1 for i in wide if 0 < i < len(text) - 1 and ord(text[i - 1]) > 127 and ord(text[i + 1]) > 127)
    return inside < 0.3 * len(wide)


def _utf16_without_bom(raw: bytes) -> str | None:
    sample = raw[:4000]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if odd > 0.4 * half and even < 0.05 * half:
        return "utf-16-le"
    if even > 0.4 * half and odd < 0.05 * half:
        return "utf-16-be"
    return None


def _strict(raw: bytes, encoding: str) -> str | None:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        return None


def decode(raw: bytes) -> tuple[str, str]:
    """Return ``(text, encoding)`` for the bytes of a text table, or raise :class:`InputError`."""
    for bom, encoding in BOMS:
        if raw.startswith(bom):
            text = _strict(raw, encoding)
            if text is None:
                raise InputError("tables.error.bad_bom", encoding=ENCODING_NAMES[encoding])
            return text.lstrip("\ufeff"), encoding
    if b"\x00" in raw:
        encoding = _utf16_without_bom(raw)
        text = _strict(raw, encoding) if encoding else None
        if text is None:
            raise InputError("tables.error.binary")
        return text, encoding
    text = _strict(raw, "utf-8")
    if text is not None:
        return text, "utf-8"
    chinese = _strict(raw, "gb18030")
    if chinese is not None and _looks_gbk(chinese[:HEURISTIC_CHARS]):
        return chinese, "gb18030"
    western = _strict(raw, "cp1252")
    encoding = "cp1252" if western is not None else "latin-1"
    western = western if western is not None else raw.decode("latin-1")
    if not _looks_western(western[:HEURISTIC_CHARS]):
        other = _charset_normalizer_guess(raw)
        if other is not None:
            return other
    return western, encoding


def _charset_normalizer_guess(raw: bytes) -> tuple[str, str] | None:
    import charset_normalizer

    best = charset_normalizer.from_bytes(raw[:200_000], cp_isolation=list(OTHER_ENCODINGS)).best()
    if best is None:
        return None
    text = _strict(raw, best.encoding)
    return (text, best.encoding) if text is not None else None


def check_text(text: str) -> None:
    """Refuse decoded text that is binary garbage or a web page."""
    sample = text[:SNIFF_CHARS]
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    if controls > max(2, len(sample) // 200):
        raise InputError("tables.error.binary")
    if HTML_START.match(sample):
        raise InputError("tables.error.html")


def _records(text: str, delimiter: str, limit: int) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        for row in reader:
            if row:
                rows.append(row)
            if len(rows) >= limit:
                break
    except csv.Error:
        pass
    return rows


def sniff_delimiter(text: str, suffix: str) -> tuple[str | None, float]:
    """Pick the delimiter whose header has 2+ cells and whose rows agree with it best.

    Returns ``(None, 0.0)`` when no delimiter splits the header: a one-column file.
    """
    sample = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n") + 1]
    preferred = "\t" if suffix == ".tsv" else ","
    best: tuple[float, bool, int] | None = None
    chosen = None
    for delimiter in DELIMITERS:
        rows = _records(sample, delimiter, SNIFF_RECORDS)
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        agree = sum(1 for r in rows if len(r) == width or (len(r) > width and not any(r[width:])))
        score = (agree / len(rows), delimiter == preferred, -DELIMITERS.index(delimiter))
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen, (best[0] if best else 0.0)


def unused_char(text: str) -> str:
    """A character absent from ``text``, to read a one-column file with the csv module."""
    for ch in "\x1f\x1e\x1d\x1c\x07":
        if ch not in text:
            return ch
    raise InputError("tables.error.binary")
