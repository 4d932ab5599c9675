"""The Extract tab's handler class without a server: translated tables (#18.6), label meanings and no empty score
column (#18.10), keyed errors (#12), the text cap's visible note, and answers/fields that stay in the text."""

from __future__ import annotations

import re

import pytest

from components.extract_handlers import ExtractHandlers
from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.errors import InputError
from pipelines.extraction.rows import ExtractRows

TEXT = "Apple opened a new office in Berlin, and Tim Cook visited Germany in May 2024."
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def handlers(ctx) -> ExtractHandlers:
    return ExtractHandlers(ctx)


def test_entity_table_in_english_has_meanings_and_no_empty_score_column(handlers) -> None:
    value, table, note = handlers.entities(TEXT, "spacy-en-sm", lang="en")
    assert list(table.columns) == ["text", "label", "start", "end", "meaning"]  # spaCy gives no score
    assert table.iloc[0].tolist()[:4] == ["Apple", "ORG", 0, 5]
    meanings = dict(zip(table["label"], table["meaning"], strict=False))
    assert "Countries" in meanings["GPE"] and meanings["ORG"]
    assert note == "" and value["text"] == TEXT


def test_entity_table_in_chinese_is_translated(handlers) -> None:
    _, table, _ = handlers.entities(TEXT, "spacy-en-sm", lang="zh-CN")
    assert list(table.columns) == ["文本", "标签", "起始", "结束", "含义"]
    assert all(CJK.search(m) for m in table["含义"])  # GPE, ORG, PERSON, DATE explained in Chinese


def test_keyphrase_and_field_tables_in_chinese(handlers, tiny_root) -> None:
    phrases, _ = handlers.keyphrases(TEXT, 3, lang="zh-CN")
    assert list(phrases.columns) == ["短语", "分数"] and 1 <= len(phrases) <= 3
    table, notes, raw = handlers.fields(TEXT, "person, city", str(tiny_root / "tiny-llama"), lang="zh-CN")
    assert list(table.columns) == ["字段", "值", "核对"]
    assert table["字段"].tolist() == ["person", "city"]
    assert all(v == "" or v in TEXT for v in table["值"])  # a random LM cannot put made-up words in the table
    assert all(CJK.search(c) for c in table["核对"]) and CJK.search(notes)
    assert isinstance(raw, str)


def test_answers_are_spans_of_the_context_or_empty(handlers, tiny_root) -> None:
    answer, highlight, details = handlers.answer("Where did Apple open an office?", TEXT,
                                                 str(tiny_root / "tiny-llama"), lang="zh-CN")
    assert answer == "" or answer in TEXT
    assert details["supported"] == bool(answer)
    assert {e["entity"] for e in highlight["entities"]} <= {"答案", "证据"}
    assert answer == "Berlin"  # the only place in the text; a random LM cannot move it


@pytest.mark.parametrize(("call", "key"), [
    (lambda h: h.entities("   ", "spacy-en-sm"), "extract.no_text"),
    (lambda h: h.keyphrases("", 5), "extract.no_text"),
    (lambda h: h.answer("", TEXT, "smollm2-135m-instruct"), "extract.no_question"),
    (lambda h: h.answer("Who?", " ", "smollm2-135m-instruct"), "extract.no_context"),
    (lambda h: h.fields(TEXT, " , ", "smollm2-135m-instruct"), "extract.no_fields"),
])
def test_errors_are_keyed(handlers, call, key) -> None:
    with pytest.raises(InputError) as info:
        call(handlers)
    assert info.value.key == key
    assert CJK.search(info.value.render("zh-CN"))


def test_batch_modes_are_checked(ctx) -> None:
    with pytest.raises(InputError) as info:
        ExtractRows(ctx.manager, ctx.limits, "summaries")
    assert info.value.key == "extract.bad_mode"
    with pytest.raises(InputError) as info:
        ExtractRows(ctx.manager, ctx.limits, "answer", question="  ")
    assert info.value.key == "extract.batch_no_question"
    rows = ExtractRows(ctx.manager, ctx.limits, "entities").process([TEXT, ""])
    assert "Apple (ORG)" in rows[0]["entities"] and rows[1]["entities"] == ""


def test_a_long_text_is_cut_with_a_visible_note(tmp_path, shared_cache_dir) -> None:
    small = AppContext.create(AppConfig(data_dir=tmp_path / "data", cache_dir=shared_cache_dir, max_input_chars=40))
    value, _, note = ExtractHandlers(small).entities(TEXT, "spacy-en-sm", lang="en")
    assert value["text"] == TEXT[:40] and "40" in note
    _, zh_note = ExtractHandlers(small).keyphrases(TEXT, 3, lang="zh-CN")
    assert CJK.search(zh_note)
