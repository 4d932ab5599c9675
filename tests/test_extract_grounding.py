"""Grounded extraction (#18.1, #18.10): answers, field values and keyphrases are spans of the source text, or are
reported as not there -- checked with texts written for these tests and the embedded models."""

from __future__ import annotations

import re

import pytest

from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.extraction.expected import for_field, for_question
from pipelines.extraction.grounded_fields import FieldCheck, GroundedFields
from pipelines.extraction.grounded_qa import GroundedQA
from pipelines.extraction.keyphrases import Keyphrases, phrase_candidates
from pipelines.extraction.spans import find_in_text, pattern_spans
from pipelines.tasks.embeddings import get_encoder
from pipelines.tasks.fields import EXAMPLE_VALUES

BRIDGE = ("The Meridian Bridge was designed by engineer Tomas Varga. Construction began in 1998 in Porto and cost "
          "85 million euros. About 40,000 cars cross it every day.")
QUESTIONS = (  # (question, the words a right answer holds)
    ("Who designed the Meridian Bridge?", "Tomas Varga"),
    ("When did construction begin?", "1998"),
    ("How much did the bridge cost?", "85 million"),
    ("How many cars cross it every day?", "40,000"),
    ("In which city was the bridge built?", "Porto"),
)
INVOICE = ("INVOICE 88-2031. Billed by Northwind Traders to Oskar Berg. Issue date: 14 February 2024. "
           "Amount due: $4,780.50.")
INVOICE_FIELDS = {"name": "Oskar Berg", "date": "14 February 2024", "amount": "4,780.50"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, shared_cache_dir) -> dict:
    ctx = AppContext.create(AppConfig(data_dir=tmp_path_factory.mktemp("grounding"), cache_dir=shared_cache_dir))
    return {"nlp": ctx.manager.load("spacy-en-sm").model, "encoder": get_encoder(ctx.manager),
            "lm": ctx.manager.load("smollm2-135m-instruct", "causal-lm")}


def _canned_reply(monkeypatch: pytest.MonkeyPatch, reply: str) -> None:
    """Make the LM's JSON reply ``reply`` (to test grounding without generation)."""
    monkeypatch.setattr("pipelines.tasks.fields.lm_fields_reply", lambda *_args, **_kw: (reply, False))


# ---- the pieces -----------------------------------------------------------------------------------------------
def test_expected_types_of_questions_and_fields() -> None:
    assert for_question("Who founded it?")[0] == "PERSON"
    assert for_question("Where is the plant?")[0] == "GPE"
    assert for_question("How many trucks were sold?")[0] == "CARDINAL"
    assert for_question("Which country hosts it?")[0] == "GPE"
    assert for_question("What is the total price?")[0] == "MONEY"
    assert for_field("due_date")[0] == "DATE" and for_field("total")[0] == "MONEY"
    assert for_field("invoice_number")[0] == "ID" and for_field("customer name")[0] == "PERSON"
    assert for_field("complaint") == ()


def test_patterns_find_money_with_currency_and_identifiers() -> None:
    text = "Ticket RX-2209 for 1,250 EUR and $99.90, call +44 20 7946 0018 or mail ops@kestrel.example."
    found = {(s.label, s.text) for s in pattern_spans(text)}
    assert {("ID", "RX-2209"), ("MONEY", "1,250 EUR"), ("MONEY", "$99.90"), ("EMAIL", "ops@kestrel.example"),
            ("PHONE", "+44 20 7946 0018")} <= found
    assert find_in_text(text, "rx-2209").text == "RX-2209"  # case forgiven, the text's own words returned
    assert find_in_text(text, "Lisbon") is None


# ---- fields: the LM's values are checked against the text -------------------------------------------------------
def test_fields_drop_values_the_text_does_not_hold(models, monkeypatch) -> None:
    text = "Service report: the heater in room 12 was fixed by Dana Whitfield in Oslo on 9 May 2023."
    _canned_reply(monkeypatch, '{"technician": "Ilbo Marr", "city": "Lisbon", "date": "9 May 2023", "cause": "rust"}')
    result = GroundedFields(models["nlp"], None).extract(text, "technician, city, date, cause")
    assert result.fields == {"technician": "Dana Whitfield", "city": "Oslo", "date": "9 May 2023", "cause": None}
    assert result.checks["date"] is FieldCheck.IN_TEXT and result.checks["city"] is FieldCheck.PICKED
    assert result.checks["cause"] is FieldCheck.UNSUPPORTED
    notes = " ".join(str(p) for p in result.problems)
    assert "Not supported by the text" in notes and "Lisbon" in notes and "rust" in notes
    assert "Not found in the text: cause." in notes  # the only field with no value


def test_the_prompt_example_never_leaks_into_a_value(models, monkeypatch) -> None:
    text = "The parcel weighs 3 kg and was left at the back door."
    example_person = next(v for v in EXAMPLE_VALUES if " " in v)
    _canned_reply(monkeypatch, f'{{"name": "{example_person.title()}", "weight": "3 kg"}}')
    result = GroundedFields(models["nlp"], None).extract(text, "name, weight")
    assert result.fields["name"] is None and result.checks["name"] is FieldCheck.UNSUPPORTED
    assert result.fields["weight"] == "3 kg"


def test_invoice_fields_with_smollm2_are_all_right_and_in_the_text(models) -> None:
    result = GroundedFields(models["nlp"], models["lm"]).extract(INVOICE, ", ".join(INVOICE_FIELDS))
    for name, right in INVOICE_FIELDS.items():
        value = result.fields[name]
        assert value is not None and value in INVOICE, (name, value)
        assert right in value, (name, value, result.raw)


# ---- question answering -------------------------------------------------------------------------------------
def test_factual_questions_with_smollm2_are_answered_from_the_text(models) -> None:
    qa = GroundedQA(models["nlp"], models["encoder"], models["lm"])
    right = 0
    for question, expected in QUESTIONS:
        result = qa.answer(question, BRIDGE)
        assert (result.supported and result.answer in BRIDGE
                and BRIDGE[result.answer_start:result.answer_end] == result.answer) or not result.supported
        assert result.answer_start is None or result.start <= result.answer_start < result.answer_end <= result.end
        right += expected in result.answer
    assert right >= 4


def test_a_question_the_text_cannot_answer_says_so(models) -> None:
    result = GroundedQA(models["nlp"], models["encoder"], None).answer("When was the bridge opened?",
                                                                       "The bridge is painted red and blue.")
    assert result.answer == "" and not result.supported
    assert result.note is not None and result.note.key == "extract.qa_no_type"


# ---- keyphrases (#18.10) ------------------------------------------------------------------------------------
def test_keyphrases_are_whole_noun_phrases_of_the_text(models) -> None:
    text = ("Riverside Council approved a new cycling network in March. The regional transport plan adds forty "
            "kilometres of protected bike lanes, and the council will publish a public consultation in May.")
    found = Keyphrases(models["encoder"], models["nlp"]).extract(text, 5)
    allowed = {p.lower() for p in phrase_candidates(models["nlp"](text), text)}
    assert 1 <= len(found) <= 5
    for item in found:
        assert item["phrase"].lower() in allowed, item  # a noun chunk or a named entity, not a raw n-gram
        assert re.search(rf"\b{re.escape(item['phrase'])}\b", text, re.IGNORECASE)
    assert not any(p["phrase"].lower().startswith(("the ", "a ")) for p in found)
