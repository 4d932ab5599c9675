"""Entities (spaCy, token classification), question answering, fields as JSON, keyphrases."""

from __future__ import annotations

import transformers

from pipelines.extraction.grounded_qa import GroundedQA
from pipelines.tasks.embeddings import get_encoder
from pipelines.tasks.extract import highlight_value, keyphrases, make_entity_extractor
from pipelines.tasks.fields import extract_fields, parse_json_reply, validate_fields
from pipelines.tasks.qa import answer_question, qa_highlight
from tests.tiny_models import SMALL, bert_tokenizer

TEXT = "Apple opened a new office in Berlin in 2024, and Tim Cook visited Germany."
CONTEXT = "The Eiffel Tower is in Paris. It was built in 1889. Many tourists visit it every year."


def _tiny_bert(folder, cls) -> str:
    labels = ["O", "B-ORG", "I-ORG", "B-LOC", "I-LOC"] if cls is transformers.BertForTokenClassification else ["s", "e"]
    cfg = transformers.BertConfig(vocab_size=len(bert_tokenizer()), max_position_embeddings=256,
                                  num_labels=len(labels), id2label=dict(enumerate(labels)),
                                  label2id={k: i for i, k in enumerate(labels)}, **SMALL)
    cls(cfg).save_pretrained(folder)
    bert_tokenizer().save_pretrained(folder)
    return str(folder)


def test_spacy_finds_apple_as_org_and_a_gpe(ctx) -> None:
    ents = make_entity_extractor(ctx.manager, "spacy-en-sm").extract_many([TEXT])[0]
    labels = {(e["text"], e["label"]) for e in ents}
    assert ("Apple", "ORG") in labels
    assert any(e["label"] == "GPE" for e in ents)
    for e in ents:
        assert TEXT[e["start"]:e["end"]] == e["text"]
    value = highlight_value(TEXT, ents)
    assert value["entities"][0] == {"entity": ents[0]["label"], "start": ents[0]["start"], "end": ents[0]["end"]}


def test_token_classification_model_spans_match_the_text(ctx) -> None:
    ref = _tiny_bert(ctx.config.models_dir / "tiny-ner", transformers.BertForTokenClassification)
    ents = make_entity_extractor(ctx.manager, ref).extract_many([TEXT, "Paris"])
    assert len(ents) == 2
    for found, text in zip(ents, [TEXT, "Paris"], strict=True):
        for e in found:
            assert e["label"] in {"ORG", "LOC"}  # B-/I- word pieces are aggregated into groups
            assert text[e["start"]:e["end"]] == e["text"]
            assert 0.0 <= e["score"] <= 1.0


def test_extractive_qa_returns_a_span_of_the_context(ctx) -> None:
    ref = _tiny_bert(ctx.config.models_dir / "tiny-qa", transformers.BertForQuestionAnswering)
    result = answer_question(ctx.manager, ref, "Where is the tower?", CONTEXT * 20).as_dict()
    assert result["answer"] == (CONTEXT * 20)[result["start"]:result["end"]]
    assert result["answer"]
    assert 0.0 < result["score"] <= 1.0


def test_lm_answer_highlights_the_supporting_sentence_and_the_answer_in_it(ctx, tiny_root) -> None:
    # changed with the grounding fix (#18.1): the answer is a span inside the highlighted evidence sentence,
    # highlighted as "answer" between two "evidence" parts (before, the LM's free text was never located)
    lm = ctx.manager.load(str(tiny_root / "tiny-llama"), "causal-lm")
    nlp = ctx.manager.load("spacy-en-sm").model
    result = GroundedQA(nlp, get_encoder(ctx.manager), lm).answer("When was the tower built?", CONTEXT)
    assert result.evidence in CONTEXT
    assert CONTEXT[result.start:result.end] == result.evidence
    assert result.supported and result.answer == "1889"  # the only date of the text
    assert CONTEXT[result.answer_start:result.answer_end] == result.answer
    assert qa_highlight(CONTEXT, result)["entities"][:2] == [
        {"entity": "evidence", "start": result.start, "end": result.answer_start},
        {"entity": "answer", "start": result.answer_start, "end": result.answer_end}]


def test_json_reply_parsing_and_repair() -> None:
    ok = parse_json_reply('{"product": "kettle", "order_id": "A-1"}')
    assert ok.data == {"product": "kettle", "order_id": "A-1"} and not ok.repaired and not ok.problems
    fenced = parse_json_reply('Sure!\n```json\n{"product": "kettle", "date": "3 May",}\n```')
    assert fenced.data == {"product": "kettle", "date": "3 May"} and fenced.repaired
    assert "repaired" in str(fenced.problems[0])
    truncated = parse_json_reply('{"product": "kettle", "complaint": "it leaks')
    assert truncated.data == {"product": "kettle", "complaint": "it leaks"}
    single = parse_json_reply("{'product': 'kettle', order_id: 7}")
    assert single.data == {"product": "kettle", "order_id": 7}
    bad = parse_json_reply("I cannot help with that.")
    assert bad.data is None and "not a JSON object" in str(bad.problems[0])


def test_fields_are_validated_missing_and_extra_keys_reported() -> None:
    values, problems = validate_fields({"Order ID": "A-1", "product": None, "colour": "blue"},
                                       ["order_id", "product"])
    assert values == {"order_id": "A-1", "product": None}
    assert any("product" in str(p) for p in problems)
    assert any("colour" in str(p) and "blue" in str(p) for p in problems)


def test_fields_with_the_real_smollm2(ctx) -> None:
    lm = ctx.manager.load("smollm2-135m-instruct")
    text = "My name is John Smith and I live in Boston."
    result = extract_fields(lm, text, "name, city", nlp=ctx.manager.load("spacy-en-sm").model)
    assert result["ok"] is True
    assert list(result["fields"]) == ["name", "city"]
    assert result["raw"].startswith('{"name":')
    assert result["fields"] == {"name": "John Smith", "city": "Boston"}


def test_keyphrases_rank_candidates_from_the_document(ctx) -> None:
    text = ("Transformer language models use self-attention. Self-attention lets the model weigh tokens. "
            "Large language models are trained on web text.")
    found = keyphrases(get_encoder(ctx.manager), text, top_k=4, nlp=ctx.manager.load("spacy-en-sm").model)
    assert 1 <= len(found) <= 4
    assert all(k["phrase"].lower() in text.lower() for k in found)  # whole phrases of the text
    assert [k["score"] for k in found] == sorted((k["score"] for k in found), reverse=True)
    assert any("language" in k["phrase"] or "attention" in k["phrase"] for k in found)
