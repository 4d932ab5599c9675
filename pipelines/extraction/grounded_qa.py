"""Grounded question answering with a causal LM: the answer is a span of the context, never free text.

preprocess: spaCy parses the context (sentences, entities, noun chunks); MiniLM ranks the sentences against the
question (the evidence). forward: the LM writes a short reply (kept only to be checked against the text) and scores
the best candidate spans. postprocess: the span with the best type match + evidence + LM score is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.engines.remote_batch import keep_partial, partial_results
from pipelines.errors import InputError, WorkbenchError
from pipelines.extraction.expected import for_question
from pipelines.extraction.scoring import best_by_lm, question_overlap, type_prior
from pipelines.extraction.spans import Span, candidate_spans, content_words, find_in_text, locate, overlaps
from pipelines.messages import Msg
from pipelines.tasks.sentences import has_cjk, split_sentences

EVIDENCE_BONUS = (2.0, 0.8)  # a span in the best / second-best evidence sentence
REPLY_BONUS = 1.5  # a span the LM's own reply contains
VERB_BONUS = 1.0  # a span whose head word is a verb or noun of the question ("What will X open?" -> its object)
LOW_CONFIDENCE = 2.0  # below this score the answer is shown with a note that the text may not answer it
MAX_CONTEXT_TOKENS = 1200
REPLY_TOKENS = 24


@dataclass
class QAResult:
    """An answer that is a span of the context (or empty, with a note saying why)."""

    answer: str
    supported: bool
    start: int | None = None  # the highlighted span: the evidence sentence (LM) or the answer (QA model)
    end: int | None = None
    answer_start: int | None = None
    answer_end: int | None = None
    evidence: str = ""
    score: float | None = None
    label: str = ""
    expected: tuple[str, ...] = ()
    lm_reply: str | None = None
    lm_reply_supported: bool | None = None
    candidates: list[dict] = field(default_factory=list)
    note: Msg | None = None

    def as_dict(self, note_text: str | None = None) -> dict[str, Any]:
        """Plain data for the API's details (``note`` rendered by the caller in the user's language)."""
        data = {k: v for k, v in vars(self).items() if k != "note"}
        data["expected"] = list(self.expected)
        data["note"] = note_text if note_text is not None else (str(self.note) if self.note else None)
        return data


def check_question(question: str, context: str) -> None:
    if not (question or "").strip():
        raise InputError("extract.no_question")
    if not (context or "").strip():
        raise InputError("extract.no_context")


@dataclass
class Parsed:
    question: str
    context: str
    sentences: list[Span]
    ranking: list[int]  # sentence indices, best evidence first
    candidates: list[Span]
    expected: tuple[str, ...]
    doc: Any = None


def head_lemma(doc: Any, span: Span) -> str:
    """The lemma of the word that governs ``span`` in the parse ('' when unknown)."""
    piece = doc.char_span(span.start, span.end, alignment_mode="expand") if doc is not None else None
    return piece.root.head.lemma_.lower() if piece is not None and piece.root.head is not piece.root else ""


class GroundedQA:
    """``answer(question, context) -> QAResult`` with spaCy ``nlp``, a sentence ``encoder`` and a causal ``lm`` (a
    :class:`~pipelines.generation.task_lm.TaskLM`, or a loaded causal LM, wrapped in one)."""

    def __init__(self, nlp: Any, encoder: Any, lm: Any = None) -> None:
        from pipelines.generation.task_lm import as_task_lm

        self.nlp, self.encoder, self.lm = nlp, encoder, as_task_lm(lm)

    def preprocess(self, question: str, context: str) -> Parsed:
        check_question(question, context)
        if has_cjk(context):  # the English spaCy pipeline cannot parse Chinese: the LM's reply, checked, decides
            return self._preprocess_cjk(question, context)
        doc = self.nlp(context)
        sentences = [Span(s.text.strip(), "SENT", s.start_char, s.start_char + len(s.text.strip()))
                     for s in doc.sents if s.text.strip()] or [Span(context, "SENT", 0, len(context))]
        ranking = self._rank(question, sentences)
        return Parsed(question.strip(), context, sentences, ranking, candidate_spans(doc, context),
                      for_question(question), doc)

    def _preprocess_cjk(self, question: str, context: str) -> Parsed:
        sentences = []
        for sentence in split_sentences(context):
            where = locate(context, sentence)
            if where:
                sentences.append(Span(context[where[0]:where[1]], "SENT", *where))
        sentences = sentences or [Span(context, "SENT", 0, len(context))]
        return Parsed(question.strip(), context, sentences, self._rank(question, sentences), [], ())

    def _rank(self, question: str, sentences: list[Span]) -> list[int]:
        """Sentence indices, the best evidence for ``question`` first (MiniLM similarity plus shared words)."""
        words = content_words(question)
        sims = self.encoder.encode([question, *(s.text for s in sentences)])
        sims = sims[1:] @ sims[0]
        score = [float(sims[i]) + 0.3 * len(words & content_words(s.text)) / max(1, len(words))
                 for i, s in enumerate(sentences)]
        return sorted(range(len(sentences)), key=lambda i: -score[i])

    @staticmethod
    def passage(parsed: Parsed) -> str:
        """The two best evidence sentences, in text order."""
        return " ".join(parsed.sentences[i].text for i in sorted(parsed.ranking[:2]))

    @staticmethod
    def reply_prompt(question: str, passage: str) -> str:
        return f"Context: {passage}\n\nQuestion: {question}\nAnswer in a few words, using only the context."

    def forward(self, parsed: Parsed, reply: str | None = None, asked: bool = False) -> dict[str, Any]:
        """The LM's short reply (asked now, or ``reply`` when ``asked``), and every candidate's score (type,
        evidence sentence, question overlap, LM)."""
        passage = self.passage(parsed)
        if not asked:
            reply = self._reply(parsed.question, passage) if self.lm is not None else None
        words = content_words(parsed.question)
        lemmas = {t.lemma_.lower() for t in self.nlp(parsed.question) if t.is_alpha and not t.is_stop}
        scored = []
        for span in parsed.candidates:
            shared = question_overlap(span, words)
            if shared is None:
                continue
            prior = type_prior(span, parsed.expected) - 2.0 * shared
            for rank, i in enumerate(parsed.ranking[:2]):
                if overlaps(span, parsed.sentences[i]):
                    prior += EVIDENCE_BONUS[rank]
            if reply and span.text.lower() in reply.lower():
                prior += REPLY_BONUS
            if not parsed.expected and head_lemma(parsed.doc, span) in lemmas:
                prior += VERB_BONUS
            scored.append((prior, span))
        prompt = (f"Text: {passage}\n\nQuestion: {parsed.question}\n"
                  "Answer with a short phrase copied from the text.")
        return {"parsed": parsed, "reply": reply, "ranked": best_by_lm(self.lm, prompt, scored)}

    def _reply(self, question: str, passage: str) -> str:
        return first_line(self.lm.reply(self.reply_prompt(question, passage), max_new_tokens=REPLY_TOKENS))

    def postprocess(self, out: dict[str, Any]) -> QAResult:
        parsed: Parsed = out["parsed"]
        reply, ranked = out["reply"], out["ranked"]
        best_sentence = parsed.sentences[parsed.ranking[0]]
        reply_span = find_in_text(parsed.context, reply) if reply else None
        result = QAResult("", False, best_sentence.start, best_sentence.end, evidence=best_sentence.text,
                          expected=parsed.expected, lm_reply=reply,
                          lm_reply_supported=None if reply is None else reply_span is not None,
                          candidates=[{**s.as_dict(), "score": round(v, 3)} for v, s in ranked[:5]])
        typed = [s for s in parsed.candidates if type_prior(s, parsed.expected) > 0]
        if parsed.expected and not typed:
            result.note = Msg.of("extract.qa_no_type", types=", ".join(parsed.expected))
            return result
        if not ranked and reply_span is None:
            result.note = Msg.of("extract.qa_not_in_text" if reply is None else "extract.qa_reply_not_in_text",
                                 **({} if reply is None else {"reply": reply[:120]}))
            return result
        score, span = ranked[0] if ranked else (LOW_CONFIDENCE, reply_span)
        sentence = next((s for s in parsed.sentences if overlaps(span, s)), best_sentence)
        result.answer, result.supported, result.label = span.text, True, span.label
        result.answer_start, result.answer_end, result.score = span.start, span.end, round(score, 3)
        result.start, result.end, result.evidence = sentence.start, sentence.end, sentence.text
        if score < LOW_CONFIDENCE:
            result.note = Msg.of("extract.qa_low_confidence")
        elif reply is not None and reply_span is None:
            result.note = Msg.of("extract.qa_reply_unsupported", reply=reply[:120])
        return result

    def answer(self, question: str, context: str) -> QAResult:
        return self.postprocess(self.forward(self.preprocess(question, context)))

    def answer_many(self, question: str, contexts: list[str]) -> list[QAResult]:
        """:meth:`answer` for several non-empty contexts: they are parsed here, the LM's replies are asked for in
        one call (a remote LM answers them concurrently), then the spans are scored."""
        parsed = [self.preprocess(question, c) for c in contexts]
        if self.lm is None:
            return [self.postprocess(self.forward(p)) for p in parsed]

        def results(replies: list[str]) -> list[QAResult]:
            return [self.postprocess(self.forward(p, first_line(r), asked=True))
                    for p, r in zip(parsed, replies, strict=False)]

        try:
            replies = self.lm.replies([self.reply_prompt(p.question, self.passage(p)) for p in parsed],
                                      max_new_tokens=REPLY_TOKENS)
        except WorkbenchError as exc:  # a remote failure: the contexts answered before it travel with the error
            raise keep_partial(exc, results(partial_results(exc))) from None
        return results(replies)


def first_line(reply: str) -> str:
    return (reply or "").split("\n")[0].strip()
