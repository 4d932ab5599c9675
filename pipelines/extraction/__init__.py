"""Grounded extraction: every answer, field value and keyphrase is a span of the source text (or says it is not there).

- :mod:`~pipelines.extraction.spans`: candidate spans (spaCy entities, noun chunks, money/identifier patterns) and
  the check that a value occurs in the text.
- :mod:`~pipelines.extraction.expected`: the entity types a question or a field name expects.
- :mod:`~pipelines.extraction.grounded_qa` / :mod:`~pipelines.extraction.grounded_fields`: answers and fields picked
  among the candidates (type, evidence sentence, the LM's score), the LM's own reply checked against the text.
- :mod:`~pipelines.extraction.keyphrases`: noun-chunk keyphrases ranked by MiniLM with MMR.
- :mod:`~pipelines.extraction.rows`: one processor per CSV mode (``process(texts) -> rows``).
"""
