"""Candidate spans of a text and the 'is it in the text?' check every answer and field value passes."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

# spaCy's determiners/pronouns dropped from the start of a noun chunk ("the blue kettle" -> "blue kettle")
LEADING = frozenset({"the", "a", "an", "this", "that", "these", "those", "its", "their", "our", "my", "your",
                     "his", "her", "some", "any", "each", "every"})
PRONOUNS = frozenset({"it", "they", "we", "i", "you", "he", "she", "them", "us", "him", "me", "which", "who",
                      "what", "that", "this", "there", "something", "anything", "everything", "nothing"})
CURRENCY = r"(?:[$€£¥₹]|US\$|USD|EUR|GBP|JPY|CHF|CNY|RMB|SEK|NOK|DKK|CAD|AUD|INR|dollars?|euros?|pounds?|yuan)"
NUMBER = r"\d{1,3}(?:[,\u202f ]\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
PATTERNS = (
    ("MONEY", re.compile(rf"(?:{CURRENCY})\s?(?:{NUMBER})(?:\s?(?:million|billion|[mMkK]n?)\b)?"
                         rf"|(?:{NUMBER})(?:\s?(?:million|billion))?\s?(?:{CURRENCY})(?![A-Za-z])")),
    ("EMAIL", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("PHONE", re.compile(r"(?<![\w-])\+?\d[\d ()-]{6,}\d(?![\w-])")),
    ("ID", re.compile(r"(?<![\w-])(?=[A-Za-z0-9/-]*\d)(?=[A-Za-z0-9/-]*[A-Za-z-])[A-Za-z0-9]+(?:[-/][A-Za-z0-9]+)+"
                      r"(?![\w-])|(?<![\w-])#?[A-Z]{1,5}\d{2,}(?![\w-])|#\d{2,}\b")),
    ("PERCENT", re.compile(rf"(?:{NUMBER})\s?(?:%|percent\b|per cent\b)")),
    ("CARDINAL", re.compile(rf"(?<![\w.,-])(?:{NUMBER})(?![\w%-]|[.,]\d)")),
)


@dataclass(frozen=True)
class Span:
    """A piece of the source text: its words, a type (spaCy label, NP for a noun chunk, ID, MONEY...) and offsets."""

    text: str
    label: str
    start: int
    end: int

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "label": self.label, "start": self.start, "end": self.end}


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Offsets without surrounding spaces/punctuation and without a leading determiner."""
    while start < end and (text[start].isspace() or text[start] in ",;:\"'([“‘"):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in ",;:.\"')]”’!?"):
        end -= 1
    first = text[start:end].split(" ", 1)
    if len(first) == 2 and first[0].lower() in LEADING:
        start += len(first[0]) + 1
    return start, end


def make_span(text: str, start: int, end: int, label: str) -> Span | None:
    start, end = _trim(text, start, end)
    words = text[start:end]
    if not words or words.lower() in PRONOUNS or words.lower() in LEADING:
        return None
    return Span(words, label, start, end)


def pattern_spans(text: str) -> list[Span]:
    """Money amounts with their currency, e-mails, phone numbers, identifiers (INV-5521), percentages, numbers."""
    found = []
    for label, pattern in PATTERNS:
        for match in pattern.finditer(text):
            span = make_span(text, match.start(), match.end(), label)
            if span:
                found.append(span)
    return found


def candidate_spans(doc: Any, text: str, noun_chunks: bool = True) -> list[Span]:
    """Every candidate of a spaCy ``doc`` of ``text``: entities, patterns, then noun chunks; de-duplicated by
    (start, end), the first label wins (so a spaCy or pattern type beats ``NP``)."""
    spans: list[Span | None] = [make_span(text, e.start_char, e.end_char, e.label_) for e in doc.ents]
    patterns = pattern_spans(text)
    spans += [s for s in patterns if s.label in ("MONEY", "EMAIL", "PHONE", "ID", "PERCENT")]
    spans += [s for s in patterns if s.label == "CARDINAL"]
    if noun_chunks:
        with contextlib.suppress(ValueError, NotImplementedError):  # a pipeline without a parser
            spans += [make_span(text, c.start_char, c.end_char, "NP") for c in doc.noun_chunks]
            spans += predicate_spans(doc, text)
    seen: dict[tuple[int, int], Span] = {}
    for span in spans:
        if span is not None and (span.start, span.end) not in seen:
            seen[(span.start, span.end)] = span
    return sorted(seen.values(), key=lambda s: (s.start, s.end))


def predicate_spans(doc: Any, text: str) -> list[Span | None]:
    """What a sentence says its subject is ("The car is *red*", "She became *chief engineer*"): ``ADJP``/``NP``."""
    found = []
    for tok in doc:
        if tok.dep_ in ("acomp", "attr", "oprd") and tok.pos_ in ("ADJ", "NOUN", "PROPN"):
            start, end = tok.left_edge.idx, tok.right_edge.idx + len(tok.right_edge.text)
            found.append(make_span(text, start, end, "ADJP" if tok.pos_ == "ADJ" else "NP"))
    return found


def _loose(fragment: str) -> re.Pattern[str] | None:
    parts = [re.escape(p) for p in re.split(r"\s+", fragment.strip()) if p]
    return re.compile(r"\s*".join(parts), re.IGNORECASE) if parts else None


def locate(text: str, fragment: str, start: int = 0) -> tuple[int, int] | None:
    """Character span of ``fragment`` in ``text``: exact, else ignoring case and differences in white space."""
    if not (fragment or "").strip():
        return None
    found = text.find(fragment, start)
    if found >= 0:
        return found, found + len(fragment)
    pattern = _loose(fragment)
    match = pattern.search(text, start) if pattern else None
    return (match.start(), match.end()) if match else None


def find_in_text(text: str, value: object) -> Span | None:
    """``value`` as a span of ``text`` (quotes, a trailing full stop and a leading 'the' forgiven), or None."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    raw = str(value).strip().strip("\"'“”‘’「」").rstrip(".。")
    if not raw:
        return None
    for option in (raw, re.sub(r"^(?:the|a|an)\s+", "", raw, flags=re.IGNORECASE)):
        where = locate(text, option)
        if where:
            return Span(text[where[0]:where[1]], "TEXT", *where)
    return None


def overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def content_words(text: str) -> set[str]:
    """Lower-case words of 3+ letters or any digits (for overlap tests)."""
    return {w for w in re.findall(r"[^\W_]+", text.lower()) if len(w) > 2 or w.isdigit()}
