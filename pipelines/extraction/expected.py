"""Which kinds of span a question or a field name asks for (spaCy labels plus the pattern types of ``spans``)."""

from __future__ import annotations

import re

PERSON = ("PERSON", "ORG", "NORP")
PLACE = ("GPE", "LOC", "FAC")
WHEN = ("DATE", "TIME")
COUNT = ("CARDINAL", "QUANTITY")
MONEY = ("MONEY",)
AMOUNT = ("MONEY", "QUANTITY", "CARDINAL", "PERCENT")
ORG = ("ORG", "PERSON")
IDENT = ("ID", "CARDINAL", "DATE")

# head words after "which"/"what" (and in field names) -> expected labels, most specific first
HEAD_WORDS = (
    (frozenset({"email", "e-mail", "mail"}), ("EMAIL",)),
    (frozenset({"phone", "telephone", "tel", "mobile", "fax"}), ("PHONE", "CARDINAL")),
    (frozenset({"percent", "percentage", "share", "rate"}), ("PERCENT", "CARDINAL")),
    (frozenset({"amount", "total", "price", "cost", "sum", "fee", "balance", "payment", "salary", "budget",
                "revenue", "value", "charge", "subtotal", "tax", "vat", "money", "funding", "profit"}), MONEY),
    (frozenset({"id", "number", "no", "nr", "code", "ref", "reference", "sku", "account", "invoice", "order",
                "ticket", "serial"}), IDENT),
    (frozenset({"date", "day", "due", "deadline", "year", "month", "time", "when", "dated", "issued",
                "birthday", "period"}), WHEN),
    (frozenset({"city", "country", "town", "place", "location", "address", "state", "region", "nation",
                "destination", "origin", "venue", "site", "province", "where"}), PLACE),
    (frozenset({"name", "person", "customer", "client", "contact", "buyer", "recipient", "payee", "author",
                "ceo", "manager", "executive", "founder", "director", "president", "employee", "owner",
                "who", "signatory", "billed", "patient", "speaker", "chief", "minister", "mayor", "technician",
                "engineer", "driver", "doctor", "nurse", "teacher", "agent", "representative", "sender", "receiver",
                "applicant", "candidate", "member", "guest", "tenant", "landlord", "witness", "reporter", "assignee",
                "reviewer", "approver", "designer", "architect", "inventor", "winner", "player", "coach"}), PERSON),
    (frozenset({"company", "vendor", "seller", "supplier", "organisation", "organization", "org", "issuer",
                "employer", "firm", "merchant", "brand", "bank", "agency", "university", "team", "business",
                "store", "shop", "publisher", "manufacturer", "airline"}), ORG),
    (frozenset({"product", "item", "goods", "device", "article", "merchandise"}), ("PRODUCT", "NP")),
    (frozenset({"quantity", "qty", "count", "units", "people", "workers", "employees", "staff", "jobs"}), COUNT),
)
QUESTION_STARTS = (
    (re.compile(r"\bhow (?:many|much of)\b"), COUNT),
    (re.compile(r"\bhow much\b"), AMOUNT),
    (re.compile(r"\bhow (?:long|often|old)\b"), ("DATE", "TIME", "QUANTITY", "CARDINAL")),
    (re.compile(r"\bwhat (?:percentage|percent|share)\b"), ("PERCENT",)),
    (re.compile(r"\b(?:when|what time|what date|what year|which year|which day|what day|which month)\b"), WHEN),
    (re.compile(r"\bwhere\b"), PLACE),
    (re.compile(r"\b(?:who|whom|whose)\b"), PERSON),
)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:-[a-z]+)?", text.lower())


def for_field(name: str) -> tuple[str, ...]:
    """The labels a field name expects (``due_date`` -> DATE, ``total`` -> MONEY); () when it could be anything."""
    words = _words(name.replace("_", " "))
    if {"number", "count"} & set(words) and "of" in words:  # number_of_workers
        return COUNT
    for heads, labels in HEAD_WORDS:
        if heads & set(words):
            return labels
    return ()


def for_question(question: str) -> tuple[str, ...]:
    """The labels a question expects: its ``wh``-word, else the head noun after which/what (``which city``)."""
    q = " ".join(_words(question))
    match = re.search(r"\b(?:which|what)\s+((?:[a-z-]+\s+){0,2}[a-z-]+)", q)
    if match:
        head = for_field(match.group(1).split()[0]) or for_field(match.group(1))
        if head and not re.search(r"\b(?:how|when|where|who)\b", q[:match.start()]):
            return head
    for pattern, labels in QUESTION_STARTS:
        if pattern.search(q):
            return labels
    return ()
