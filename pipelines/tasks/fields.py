"""Field extraction: the LM returns JSON for the fields the user names; the reply is parsed, repaired when it
is not valid JSON (json-repair), and validated against the fields -- problems are reported, never dropped."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pipelines.errors import InputError
from pipelines.models.manager import LoadedModel
from pipelines.tasks.lm_prompting import GenerationConfig, generate, truncate_tokens

MAX_FIELDS = 20
_FIELD = re.compile(r"^[\w][\w .-]{0,49}$", re.UNICODE)


def parse_fields(raw: str) -> list[str]:
    """``product, order_id, date`` -> a clean, de-duplicated list of field names."""
    names = list(dict.fromkeys(s.strip() for s in re.split(r"[,;\n，；]", raw or "") if s.strip()))
    if not names:
        raise InputError("Name at least one field, e.g. `product, order_id, date`.")
    if len(names) > MAX_FIELDS:
        raise InputError(f"At most {MAX_FIELDS} fields are allowed.")
    bad = [n for n in names if not _FIELD.match(n)]
    if bad:
        raise InputError(f"Field names may hold letters, digits, spaces, '_', '-' and '.': {', '.join(bad)}")
    return names


@dataclass
class ParsedReply:
    """The parsed JSON object, whether it had to be repaired, and what was wrong."""

    data: dict | None
    repaired: bool = False
    problems: list[str] = field(default_factory=list)


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
        return ParsedReply(None, repaired, ["The model's reply is not a JSON object, even after repair."])
    problems = ["The model's reply was not valid JSON; it was repaired."] if repaired else []
    return ParsedReply(data, repaired, problems)


def _norm(name: str) -> str:
    return re.sub(r"[\s_-]+", "_", str(name).strip().lower())


def validate_fields(data: dict, fields: list[str]) -> tuple[dict[str, object], list[str]]:
    """Map the reply's keys onto ``fields`` (case/space/underscore-insensitive); report missing and extra keys."""
    by_norm = {_norm(k): v for k, v in data.items()}
    values: dict[str, object] = {}
    problems: list[str] = []
    for name in fields:
        value = by_norm.pop(_norm(name), None)
        if isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False)
        values[name] = value
    missing = [n for n in fields if values[n] in (None, "")]
    if missing:
        problems.append(f"Not found in the text: {', '.join(missing)}.")
    if by_norm:
        extra = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)[:60]}" for k, v in by_norm.items())
        problems.append(f"The model also returned keys that were not asked for: {extra}.")
    return values, problems


EXAMPLE = ('Text: "Hi, I am Ana Lopez. My phone is 555-0199."\nKeys: name, phone, city\n'
           'JSON: {"name": "Ana Lopez", "phone": "555-0199", "city": null}')


def fields_prompt(text: str, fields: list[str]) -> str:
    """A one-shot prompt: copy values from the text into a flat JSON object with exactly the given keys."""
    return (f"Copy values from the text into a flat JSON object with exactly the given keys; use null when a value "
            f"is not in the text.\n\nExample:\n{EXAMPLE}\n\nText: \"{text}\"\nKeys: {', '.join(fields)}\nJSON:")


def extract_fields(lm: LoadedModel, text: str, raw_fields: str, max_text_tokens: int = 1200) -> dict:
    """Ask the LM for the fields as JSON; return values, problems, the raw reply and whether it was repaired."""
    if not (text or "").strip():
        raise InputError("Type or paste a text first.")
    fields = parse_fields(raw_fields)
    clipped, cut = truncate_tokens(lm.tokenizer, text, max_text_tokens)
    prefill = "{" + json.dumps(fields[0], ensure_ascii=False) + ":"
    reply = generate(lm, fields_prompt(clipped, fields), GenerationConfig(max_new_tokens=16 + 24 * len(fields),
                                                                        repetition_penalty=1.0), prefill=prefill)
    if "}" in reply:
        reply = reply[:reply.index("}") + 1]  # a flat object ends at its first closing brace
    parsed = parse_json_reply(reply)
    problems = list(parsed.problems)
    if cut:
        problems.append(f"Only the first {max_text_tokens} tokens of the text were read.")
    if parsed.data is None:
        return {"fields": dict.fromkeys(fields), "ok": False, "repaired": parsed.repaired,
                "problems": problems, "raw": reply}
    values, found = validate_fields(parsed.data, fields)
    return {"fields": values, "ok": True, "repaired": parsed.repaired, "problems": problems + found, "raw": reply}
