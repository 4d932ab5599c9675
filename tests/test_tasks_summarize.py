"""Sentence splitting, extractive and abstractive summaries, ROUGE."""

from __future__ import annotations

import pytest

from pipelines.tasks.embeddings import get_encoder
from pipelines.tasks.metrics import mean_rouge, rouge_scores
from pipelines.tasks.sentences import split_sentences
from pipelines.tasks.summarize import (
    AbstractiveConfig,
    AbstractiveSummarizer,
    ExtractiveConfig,
    ExtractiveSummarizer,
)

ARTICLE = (
    "The city council approved a new budget on Monday. The budget increases spending on public transport. "
    "Bus routes will run more often in the evening. Critics said the plan raises taxes too much. "
    "The mayor argued that better transport helps local businesses. Dr. Lee, an economist, agreed with the mayor. "
    "The new timetable starts in January."
)


def test_chinese_sentence_splitting() -> None:
    text = "今天天气很好。我们去公园吧！你想去吗？“好的。”他说"
    assert split_sentences(text) == ["今天天气很好。", "我们去公园吧！", "你想去吗？", "“好的。”", "他说"]


def test_english_sentence_splitting_keeps_abbreviations() -> None:
    sentences = split_sentences(ARTICLE)
    assert len(sentences) == 7
    assert sentences[5] == "Dr. Lee, an economist, agreed with the mayor."


def test_extractive_summary_keeps_original_sentences_in_order(ctx) -> None:
    summarizer = ExtractiveSummarizer(get_encoder(ctx.manager), ExtractiveConfig(count=3))
    result = summarizer.summarize(ARTICLE)
    sentences = split_sentences(ARTICLE)
    assert len(result["sentences"]) == 3
    assert all(s in sentences for s in result["sentences"])
    assert result["indices"] == sorted(result["indices"])
    assert [sentences.index(s) for s in result["sentences"]] == result["indices"]
    ratio = ExtractiveSummarizer(get_encoder(ctx.manager), ExtractiveConfig(ratio=0.5)).summarize(ARTICLE)
    assert len(ratio["sentences"]) == 4  # ceil(7 * 0.5)


def test_extractive_summary_of_several_texts_at_once(ctx) -> None:
    summarizer = ExtractiveSummarizer(get_encoder(ctx.manager), ExtractiveConfig(count=1))
    results = summarizer.summarize_many([ARTICLE, "Only one sentence here.", "", "第一句。第二句。"])
    assert [len(r["sentences"]) for r in results] == [1, 1, 0, 1]
    assert results[1]["summary"] == "Only one sentence here."


def test_rouge_of_identical_text_is_one_and_chinese_is_character_level() -> None:
    assert rouge_scores(ARTICLE, ARTICLE) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert rouge_scores("今天天气很好", "今天天气很好")["rouge1"] == 1.0
    partial = rouge_scores("今天天气很好", "明天天气不好")
    assert 0.0 < partial["rouge1"] < 1.0  # the default tokenizer would drop every Chinese character
    means = mean_rouge(["a b c", "x"], ["a b c", ""])
    assert means["count"] == 1 and means["rouge1"] == 1.0


def test_abstractive_seq2seq_chunks_long_documents_hierarchically(ctx, tiny_root) -> None:
    loaded = ctx.manager.load(str(tiny_root / "tiny-t5"), "seq2seq")
    summarizer = AbstractiveSummarizer(loaded, AbstractiveConfig(max_new_tokens=8, chunk_tokens=40))
    steps: list[str] = []
    result = summarizer.summarize(ARTICLE * 2, lambda _f, desc: steps.append(desc))
    assert result["chunks"] > 1 and result["levels"] >= 2
    assert isinstance(result["summary"], str)
    assert any("chunk" in str(s) for s in steps)


def test_abstractive_lm_summary_via_chat_template(ctx, tiny_root) -> None:
    loaded = ctx.manager.load(str(tiny_root / "tiny-llama"), "causal-lm")
    result = AbstractiveSummarizer(loaded, AbstractiveConfig(max_new_tokens=6)).summarize(ARTICLE)
    assert result == {"summary": result["summary"], "chunks": 1, "levels": 1}
    assert isinstance(result["summary"], str)


@pytest.mark.parametrize("ratio", [0.0, 1.5])
def test_bad_ratio_is_refused(ctx, ratio) -> None:
    from pipelines.errors import InputError

    config = ExtractiveConfig(count=0, ratio=ratio or None)
    with pytest.raises(InputError):
        ExtractiveSummarizer(get_encoder(ctx.manager), config).summarize(ARTICLE)
