"""Sentence splitting for English and Chinese, CJK detection and text caps."""

from __future__ import annotations

import re

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Sentences end at Chinese 。！？ (plus closing quotes), or at . ! ? + space + an upper-case/quote/digit start.
_CJK_END = re.compile(r"(?<=[。！？!?])(?![”’」』）)\"'。！？!?])|(?<=[。！？!?][”’」』）)\"'])")
_LATIN_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9\u00c0-\u024f])")
ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc", "ltd", "no", "fig",
})


def has_cjk(text: str) -> bool:
    """True when ``text`` contains Chinese/Japanese ideographs."""
    return bool(CJK.search(text or ""))


def _split_latin(paragraph: str) -> list[str]:
    parts: list[str] = []
    start = 0
    for match in _LATIN_END.finditer(paragraph):
        candidate = paragraph[start:match.start()]
        last_word = candidate.rstrip(".!?\"')]").rsplit(maxsplit=1)[-1].lower() if candidate.strip() else ""
        if candidate.endswith(".") and (last_word in ABBREVIATIONS or len(last_word) == 1):
            continue  # "Dr. Smith", "J. Doe": not a sentence end
        parts.append(paragraph[start:match.end()])
        start = match.end()
    parts.append(paragraph[start:])
    return parts


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (English ``. ! ?`` and Chinese ``。！？``), keeping their order and wording."""
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n|\r?\n(?=\s*[-*•]|\s*\d+[.)]\s)", text or ""):
        for latin in _split_latin(paragraph.strip()):
            for piece in _CJK_END.split(latin):
                piece = " ".join(piece.split()) if not has_cjk(piece) else piece.strip()
                if piece:
                    sentences.append(piece)
    return sentences


def cap_text(text: str, max_chars: int) -> tuple[str, str | None]:
    """Cut ``text`` to ``max_chars``; return the text and a note when it was cut."""
    text = text or ""
    if len(text) <= max_chars:
        return text, None
    return text[:max_chars], f"Only the first {max_chars:,} of {len(text):,} characters are used."


def join_sentences(sentences: list[str]) -> str:
    """Join sentences with a space between Latin ones and none between Chinese ones."""
    out = ""
    for sentence in sentences:
        if out and not (has_cjk(out[-1]) or out[-1] in "。！？" or has_cjk(sentence[:1])):
            out += " "
        out += sentence
    return out
