"""The extractive summary keeps the lead sentence of a news story when it is central (#18.10), and only then."""

from __future__ import annotations

import pytest

from pipelines.tasks.embeddings import get_encoder
from pipelines.tasks.summarize import ExtractiveConfig, ExtractiveSummarizer, position_prior

NEWS = (
    "Floods forced thousands of residents to leave their homes in the river town of Millbrook on Tuesday after "
    "three days of heavy rain. The river rose two metres overnight and broke through a wall near the old bridge. "
    "Emergency crews used boats to reach families trapped on upper floors. Schools across the district will stay "
    "closed for the rest of the week. Forecasters expect more rain on Thursday, and officials warned that the water "
    "could rise again. The town last flooded in 1998, when a smaller wall was built. Local businesses said they "
    "would need months to recover."
)
LEAD = NEWS.split(". ")[0] + "."
OFF_TOPIC = "Sign up for our free newsletter and get the best recipes every morning."


@pytest.fixture
def encoder(ctx):
    return get_encoder(ctx.manager)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_the_lead_of_a_news_story_is_kept(encoder, count) -> None:
    result = ExtractiveSummarizer(encoder, ExtractiveConfig(count=count)).summarize(NEWS)
    assert result["indices"][0] == 0 and result["sentences"][0] == LEAD
    assert len(result["sentences"]) == count


def test_without_the_lead_bias_the_lead_was_skipped(encoder) -> None:
    """Centrality alone picks a background sentence for this story (the defect the lead bias fixes)."""
    result = ExtractiveSummarizer(encoder, ExtractiveConfig(count=1, lead_bias=0.0)).summarize(NEWS)
    assert result["indices"] != [0]


def test_an_off_topic_first_sentence_is_not_kept(encoder) -> None:
    result = ExtractiveSummarizer(encoder, ExtractiveConfig(count=2)).summarize(f"{OFF_TOPIC} {NEWS}")
    assert OFF_TOPIC not in result["sentences"]
    assert 1 in result["indices"]  # the story's own lead, now the second sentence


def test_position_prior_falls_with_the_position() -> None:
    prior = position_prior(4)
    assert prior[0] == 1.0 and list(prior) == sorted(prior, reverse=True)
