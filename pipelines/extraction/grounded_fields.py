"""Grounded fields: every value is a span of the text, or the field says it is not there.

preprocess: the field names, spaCy's candidate spans and each field's expected type. forward: the LM's JSON reply
(parsed, repaired) and, for typed fields, the LM's score of the spans of that type. postprocess: per field, the span
of the expected type that best fits (the LM's value when it is in the text, the words near it, the LM's score), the
LM's value when it is in the text, else nothing -- a value the LM made up is reported, never shown as found.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

from pipelines.engines.remote_batch import keep_partial, partial_results
from pipelines.errors import InputError, WorkbenchError
from pipelines.extraction.expected import for_field
from pipelines.extraction.scoring import best_by_lm, type_prior
from pipelines.extraction.spans import Span, candidate_spans, find_in_text, overlaps, pattern_spans
from pipelines.messages import Msg
from pipelines.tasks.fields import parse_fields, parse_json_reply, validate_fields

NEAR_CHARS = 40  # the field's words this close before a span make it the likelier value ("due 30 April")
NEAR_BONUS = 2.0
REPLY_BONUS = 2.0  # a span the LM's value overlaps


class FieldCheck(enum.StrEnum):
    """How a field's value was found (shown beside it, translated: ``extract.check.<value>``)."""

    IN_TEXT = "in_text"  # the LM's value, found in the text
    PICKED = "picked"  # a span of the expected type picked from the text
    MISSING = "missing"  # nothing in the text
    UNSUPPORTED = "unsupported"  # the LM's value is not in the text: dropped


@dataclass
class FieldsResult:
    """Values (spans of the text or None), how each was found, problems, and the LM's raw reply."""

    fields: dict[str, str | None]
    checks: dict[str, FieldCheck]
    problems: list[Msg] = field(default_factory=list)
    raw: str = ""
    ok: bool = True
    repaired: bool = False
    spans: dict[str, dict | None] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)  # field -> the LM's unsupported value

    def as_dict(self) -> dict[str, Any]:
        return {"fields": dict(self.fields), "checks": {k: str(v) for k, v in self.checks.items()},
                "problems": list(self.problems), "raw": self.raw, "ok": self.ok, "repaired": self.repaired,
                "spans": dict(self.spans), "dropped": dict(self.dropped)}


@dataclass
class Prepared:
    text: str
    names: list[str]
    candidates: list[Span]
    expected: dict[str, tuple[str, ...]]


def _field_words(name: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", name.lower().replace("_", " ")) if len(w) > 1]


def near_bonus(text: str, span: Span, name: str) -> float:
    """:data:`NEAR_BONUS` when a word of the field name stands just before the span (``Total: $40``)."""
    before = text[max(0, span.start - NEAR_CHARS):span.start].lower()
    return NEAR_BONUS if any(re.search(rf"\b{re.escape(w)}", before) for w in _field_words(name)) else 0.0


def specificity(expected: tuple[str, ...]) -> int:
    """Fields of a precise type pick their spans first; noun-chunk and untyped fields last."""
    return 2 if not expected else 1 if "NP" in expected else 0


class GroundedFields:
    """``extract(text, fields) -> FieldsResult`` with spaCy ``nlp`` (optional) and a causal ``lm`` (a
    :class:`~pipelines.generation.task_lm.TaskLM`, or a loaded causal LM, wrapped in one)."""

    def __init__(self, nlp: Any, lm: Any, max_text_tokens: int = 1200) -> None:
        from pipelines.generation.task_lm import as_task_lm

        self.nlp, self.lm, self.max_text_tokens = nlp, as_task_lm(lm), max_text_tokens

    def preprocess(self, text: str, raw_fields: str) -> Prepared:
        if not (text or "").strip():
            raise InputError("extract.no_text")
        names = parse_fields(raw_fields)
        candidates = candidate_spans(self.nlp(text), text) if self.nlp is not None else pattern_spans(text)
        return Prepared(text, names, candidates, {name: for_field(name) for name in names})

    def forward(self, prep: Prepared, reply: tuple[str, bool] | None = None) -> dict[str, Any]:
        """The LM's JSON reply (asked now, or ``reply``: (raw reply, text was cut)) and each field's span."""
        from pipelines.tasks.fields import lm_fields_reply

        raw, cut = reply if reply is not None else lm_fields_reply(self.lm, prep.text, prep.names,
                                                                    self.max_text_tokens)
        parsed = parse_json_reply(raw)
        values, problems = validate_fields(parsed.data, prep.names) if parsed.data is not None else ({}, [])
        problems = [p for p in problems if p.key != "extract.fields_missing"]  # decided after grounding
        if cut:
            problems.append(Msg.of("extract.fields_text_cut", tokens=self.max_text_tokens))
        picks: dict[str, Span | None] = {}
        taken: list[Span] = []
        for name in sorted(prep.names, key=lambda n: specificity(prep.expected[n])):
            picks[name] = self._pick(prep, name, values.get(name), taken)
            if picks[name] is not None:
                taken.append(picks[name])
        return {"raw": raw, "parsed": parsed, "values": values, "problems": [*parsed.problems, *problems],
                "picks": picks, "taken": taken}

    def _pick(self, prep: Prepared, name: str, value: object, taken: list[Span]) -> Span | None:
        """The best span of the expected type for ``name`` not taken by another field (None: no such span)."""
        expected = prep.expected[name]
        typed = [s for s in prep.candidates if expected and type_prior(s, expected) > 0
                 and not any(overlaps(s, t) for t in taken)]
        if not typed:
            return None
        said = self._supported(prep.text, value)
        scored = [(type_prior(s, expected) + near_bonus(prep.text, s, name)
                   + (REPLY_BONUS if said and overlaps(s, said) else 0.0) + min(0.3, 0.02 * len(s.text)), s)
                  for s in typed]
        label = name.replace("_", " ")
        prompt = f"Text: {prep.text}\n\nWhat is the {label}? Copy it from the text."
        return best_by_lm(self.lm, prompt, scored)[0][1]

    @staticmethod
    def _supported(text: str, value: object) -> Span | None:
        """``value`` as a span of ``text``; a value of the prompt's example is not, unless the text has it."""
        return find_in_text(text, value)

    def postprocess(self, prep: Prepared, out: dict[str, Any]) -> FieldsResult:
        parsed = out["parsed"]
        result = FieldsResult({}, {}, list(out["problems"]), out["raw"], parsed.data is not None, parsed.repaired)
        for name in prep.names:
            value, pick = out["values"].get(name), out["picks"][name]
            said = self._supported(prep.text, value)
            other = [t for t in out["taken"] if t is not pick]
            usable = said if said is not None and not any(overlaps(said, t) for t in other) else None
            if pick is not None:
                chosen = pick
                check = FieldCheck.IN_TEXT if usable is not None and overlaps(pick, usable) else FieldCheck.PICKED
            elif usable is not None:
                chosen, check = usable, FieldCheck.IN_TEXT
            else:
                chosen, check = None, FieldCheck.MISSING
            if said is None and value not in (None, ""):
                result.dropped[name] = str(value)[:80]
                if chosen is None:
                    check = FieldCheck.UNSUPPORTED
            result.fields[name] = chosen.text if chosen else None
            result.checks[name] = check
            result.spans[name] = chosen.as_dict() if chosen else None
        self._notes(result)
        return result

    @staticmethod
    def _notes(result: FieldsResult) -> None:
        missing = [n for n, c in result.checks.items() if c in (FieldCheck.MISSING, FieldCheck.UNSUPPORTED)]
        if missing:
            result.problems.append(Msg.of("extract.fields_missing", fields=", ".join(missing)))
        if result.dropped:
            items = "; ".join(f"{k} = \"{v}\"" for k, v in result.dropped.items())
            result.problems.append(Msg.of("extract.fields_unsupported", items=items))

    def extract(self, text: str, raw_fields: str) -> FieldsResult:
        prep = self.preprocess(text, raw_fields)
        return self.postprocess(prep, self.forward(prep))

    def extract_many(self, texts: list[str], raw_fields: str) -> list[FieldsResult]:
        """:meth:`extract` for several non-empty texts: spaCy reads them here, the LM's JSON replies are asked for
        in one call (a remote LM answers them concurrently), then each is grounded in its text."""
        from pipelines.tasks.fields import fields_request, first_object

        preps = [self.preprocess(text, raw_fields) for text in texts]
        if not preps:
            return []
        asks = [fields_request(self.lm, p.text, p.names, self.max_text_tokens) for p in preps]

        def results(replies: list[str]) -> list[FieldsResult]:
            return [self.postprocess(p, self.forward(p, (first_object(r), a.cut)))
                    for p, a, r in zip(preps, asks, replies, strict=False)]

        try:
            replies = self.lm.replies([a.prompt for a in asks], max_new_tokens=asks[0].max_new_tokens,
                                      prefill=asks[0].prefill, repetition_penalty=1.0)
        except WorkbenchError as exc:  # a remote failure: the texts answered before it travel with the error
            raise keep_partial(exc, results(partial_results(exc))) from None
        return results(replies)
