"""Field extraction, the LM side: the LM returns JSON for the fields the user names; the reply is parsed, repaired
when it is not valid JSON (json-repair), and validated against the fields -- problems are reported, never dropped.

Grounding (every value must be a span of the text) is in :mod:`pipelines.extraction.grounded_fields`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import InputError
from pipelines.messages import Msg

MAX_FIELDS = 20
_FIELD = re.compile(r"^[\w][\w .-]{0,49}$", re.UNICODE)

# The one-shot example is about things no real text mentions, so its values cannot leak into an answer
# (and any value equal to one of them that is not in the text is dropped anyway).
EXAMPLE = ('Text: "Zorvex ticket QX-77 was filed by Captain Ilbo Marr aboard the starship Quillon."\n'
           'Keys: ticket, person, ship, planet\n'
           'JSON: {"ticket": "QX-77", "person": "Ilbo Marr", "ship": "Quillon", "planet": null}')
EXAMPLE_VALUES = frozenset({"qx-77", "ilbo marr", "captain ilbo marr", "quillon", "zorvex"})


def parse_fields(raw: str) -> list[str]:
    """``product, order_id, date`` -> a clean, de-duplicated list of field names."""
    names = list(dict.fromkeys(s.strip() for s in re.split(r"[,;\n，；]", raw or "") if s.strip()))
    if not names:
        raise InputError("extract.no_fields")
    if len(names) > MAX_FIELDS:
        raise InputError("extract.too_many_fields", limit=MAX_FIELDS)
    bad = [n for n in names if not _FIELD.match(n)]
    if bad:
        raise InputError("extract.bad_field_names", names=", ".join(bad))
    return names


@dataclass
class ParsedReply:
    """The parsed JSON object, whether it had to be repaired, and what was wrong."""

    data: dict | None
    repaired: bool = False
    problems: list[Msg] = field(default_factory=list)


def _json_candidate(reply: str) -> str:
    text = (reply or "").strip()
    fenced = re.search(r"```(?:json)?\s*(\{.*?)(?:```|$)", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    start = text.find("{")
    if start < 0:
        return text
    end = text.rfind("}")
    return text[start:end + 1] if end > start else text[start:]


def parse_json_reply(reply: str) -> ParsedReply:
    """Parse the model's reply as one JSON object, repairing it with json-repair when needed."""
    candidate = _json_candidate(reply)
    try:
        data = json.loads(candidate)
        repaired = False
    except ValueError:
        from json_repair import repair_json

        data = repair_json(candidate, return_objects=True, skip_json_loads=True)
        repaired = True
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]
    if not isinstance(data, dict) or not data:
        return ParsedReply(None, repaired, [Msg.of("extract.reply_not_json")])
    problems = [Msg.of("extract.reply_repaired")] if repaired else []
    return ParsedReply(data, repaired, problems)


def _norm(name: str) -> str:
    return re.sub(r"[\s_-]+", "_", str(name).strip().lower())


def validate_fields(data: dict, fields: list[str]) -> tuple[dict[str, object], list[Msg]]:
    """Map the reply's keys onto ``fields`` (case/space/underscore-insensitive); report missing and extra keys."""
    by_norm = {_norm(k): v for k, v in data.items()}
    values: dict[str, object] = {}
    problems: list[Msg] = []
    for name in fields:
        value = by_norm.pop(_norm(name), None)
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        values[name] = value
    missing = [n for n in fields if values[n] in (None, "")]
    if missing:
        problems.append(Msg.of("extract.fields_missing", fields=", ".join(missing)))
    if by_norm:
        extra = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)[:60]}" for k, v in by_norm.items())
        problems.append(Msg.of("extract.fields_extra", items=extra))
    return values, problems


def fields_prompt(text: str, fields: list[str]) -> str:
    """A one-shot prompt: copy values from the text into a flat JSON object with exactly the given keys."""
    return (f"Copy values from the text into a flat JSON object with exactly the given keys; use null when a value "
            f"is not in the text.\n\nExample:\n{EXAMPLE}\n\nText: \"{text}\"\nKeys: {', '.join(fields)}\nJSON:")


@dataclass(frozen=True)
class FieldsRequest:
    """What the LM is asked for one text: the prompt, the start of the reply it continues, and its length."""

    prompt: str
    prefill: str
    max_new_tokens: int
    cut: bool  # the text was cut to ``max_text_tokens``


def fields_request(lm: Any, text: str, fields: list[str], max_text_tokens: int = 1200) -> FieldsRequest:
    """The request for ``fields`` of ``text`` (cut to ``max_text_tokens`` tokens of ``lm``, a TaskLM)."""
    clipped, cut = lm.truncate(text, max_text_tokens)
    prefill = "{" + json.dumps(fields[0], ensure_ascii=False) + ":"
    return FieldsRequest(fields_prompt(clipped, fields), prefill, 16 + 24 * len(fields), cut)


def first_object(reply: str) -> str:
    """The reply up to its first ``}`` (a flat object ends at its first closing brace)."""
    return reply[:reply.index("}") + 1] if "}" in reply else reply


def lm_fields_reply(lm: Any, text: str, fields: list[str], max_text_tokens: int = 1200) -> tuple[str, bool]:
    """The LM's raw JSON reply for ``fields`` of ``text`` (cut at its first ``}``), and whether the text was cut.

    ``lm``: a :class:`~pipelines.generation.task_lm.TaskLM` (a loaded causal LM is wrapped in one).
    """
    from pipelines.generation.task_lm import as_task_lm

    lm = as_task_lm(lm)
    request = fields_request(lm, text, fields, max_text_tokens)
    reply = lm.reply(request.prompt, max_new_tokens=request.max_new_tokens, prefill=request.prefill,
                     repetition_penalty=1.0)
    return first_object(reply), request.cut


def extract_fields(lm: Any, text: str, raw_fields: str, nlp: Any = None, max_text_tokens: int = 1200) -> dict:
    """Fields of ``text`` grounded in it: values, per-field checks, problems (:class:`Msg`), the raw reply.

    With spaCy's ``nlp`` a field's value may be picked among the text's spans of the expected type; without it,
    only the LM's values that occur in the text are kept.
    """
    from pipelines.extraction.grounded_fields import GroundedFields

    return GroundedFields(nlp, lm, max_text_tokens).extract(text, raw_fields).as_dict()
