"""Tables and highlights of the Extract tab in the user's language (headers, label meanings, field checks)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from components.i18n import text
from pipelines.messages import has_key

ENTITY_COLUMNS = ("text", "label", "start", "end", "meaning")
SCORED_ENTITY_COLUMNS = (*ENTITY_COLUMNS, "score")
FIELD_COLUMNS = ("field", "value", "check")
KEYPHRASE_COLUMNS = ("phrase", "score")


def headers(columns: tuple[str, ...], lang: str) -> list[str]:
    return [text(f"extract.col.{c}", lang) for c in columns]


def explain(label: str, lang: str) -> str:
    """What an entity label means (translated for the common spaCy/CoNLL labels; spaCy's own text otherwise)."""
    key = f"extract.label.{label}"
    if has_key(key):
        return text(key, lang)
    try:
        import spacy

        return spacy.explain(label) or ""
    except ImportError:  # pragma: no cover - spaCy ships with the app
        return ""


def entity_table(entities: list[dict], lang: str) -> pd.DataFrame:
    """text, label, start, end, meaning (and score when the model gives one; spaCy does not)."""
    scored = any(e.get("score") is not None for e in entities)
    columns = SCORED_ENTITY_COLUMNS if scored else ENTITY_COLUMNS
    rows = [[e["text"], e["label"], e["start"], e["end"], explain(e["label"], lang),
             *([e.get("score")] if scored else [])] for e in entities]
    return pd.DataFrame(rows, columns=headers(columns, lang))


def fields_table(result: dict, lang: str) -> pd.DataFrame:
    """field, value (a span of the text, or empty), and how it was found."""
    checks = result.get("checks", {})
    rows = [[name, "" if value is None else str(value),
             text(f"extract.check.{checks[name]}", lang) if name in checks else ""]
            for name, value in result["fields"].items()]
    return pd.DataFrame(rows, columns=headers(FIELD_COLUMNS, lang))


def keyphrase_table(found: list[dict], lang: str) -> pd.DataFrame:
    return pd.DataFrame([[k["phrase"], k["score"]] for k in found], columns=headers(KEYPHRASE_COLUMNS, lang))


def empty_tables(lang: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three empty tables with headers in ``lang`` (shown when the page loads)."""
    return (pd.DataFrame(columns=headers(ENTITY_COLUMNS, lang)), pd.DataFrame(columns=headers(FIELD_COLUMNS, lang)),
            pd.DataFrame(columns=headers(KEYPHRASE_COLUMNS, lang)))


def translate_highlight(value: dict[str, Any], lang: str) -> dict[str, Any]:
    """The QA highlight with its 'answer'/'evidence' labels in ``lang`` (English stays as the API documents it)."""
    if lang == "en":
        return value
    return {"text": value["text"], "entities": [{**e, "entity": text(f"extract.hl.{e['entity']}", lang)}
                                                for e in value["entities"]]}
