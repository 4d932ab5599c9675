"""Summarisation: extractive (MiniLM centrality + MMR) and abstractive (seq2seq or instruct LM), chunked
hierarchically when a document is longer than the model's context."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from pipelines.errors import InputError
from pipelines.limits import token_limit as input_limit
from pipelines.messages import Msg
from pipelines.tasks.embeddings import EmbeddingTask, mmr
from pipelines.tasks.lm_prompting import GenerationConfig, count_tokens, generate
from pipelines.tasks.sentences import has_cjk, join_sentences, split_sentences

if TYPE_CHECKING:
    from pipelines.models.manager import LoadedModel, ModelManager

ProgressFn = Callable[[float, "Msg | str"], None]
MAX_LEVELS = 4


@dataclass
class ExtractiveConfig:
    """How many sentences to keep: ``count``, or ``ratio`` of the sentences when given (0 < ratio <= 1)."""

    count: int = 3
    ratio: float | None = None
    diversity: float = 0.3
    lead_bias: float = 0.5  # position prior: earlier sentences gain up to this share of the centrality spread


def position_prior(n: int) -> np.ndarray:
    """1 for the first sentence, falling as 1/(1 + i): the lead of a news story usually states its gist."""
    return 1.0 / (1.0 + np.arange(n, dtype=np.float64))


def sentence_budget(n_sentences: int, config: ExtractiveConfig) -> int:
    if config.ratio:
        if not 0 < config.ratio <= 1:
            raise InputError("summarize.bad_ratio")
        return max(1, min(n_sentences, math.ceil(n_sentences * config.ratio)))
    if config.count < 1:
        raise InputError("summarize.keep_one")
    return min(n_sentences, int(config.count))


class ExtractiveSummarizer:
    """Ranks sentences by centrality (mean cosine similarity to the others) and removes redundancy with MMR."""

    batch_size = 16

    def __init__(self, encoder: EmbeddingTask, config: ExtractiveConfig | None = None) -> None:
        self.encoder = encoder
        self.config = config or ExtractiveConfig()

    def summarize(self, text: str) -> dict:
        return self.summarize_many([text])[0]

    def summarize_many(self, texts: list[str]) -> list[dict]:
        """Summarise several texts with one encoder pass over all their sentences."""
        split = [split_sentences(t) for t in texts]
        flat = [s for sentences in split for s in sentences]
        vectors = self.encoder.encode(flat, batch_size=64)
        results, start = [], 0
        for sentences in split:
            vecs = vectors[start:start + len(sentences)]
            start += len(sentences)
            results.append(self._select(sentences, vecs))
        return results

    def _select(self, sentences: list[str], vecs: np.ndarray) -> dict:
        if not sentences:
            return {"summary": "", "sentences": [], "indices": []}
        k = sentence_budget(len(sentences), self.config)
        pairwise = vecs @ vecs.T
        relevance = self.relevance(pairwise)
        chosen = sorted(mmr(relevance, pairwise, k, self.config.diversity))
        picked = [sentences[i] for i in chosen]
        return {"summary": join_sentences(picked), "sentences": picked, "indices": chosen}

    def relevance(self, pairwise: np.ndarray) -> np.ndarray:
        """Centrality (mean cosine similarity to the other sentences) plus a lead bias for central early sentences.

        An early sentence gains up to ``lead_bias`` times the spread of the centralities, times
        :func:`position_prior`, times how central it is (0 at the median centrality or below, 1 at the top): the
        lead of a news story is kept when it is about as central as the best sentence, never when it is off-topic.
        """
        n = len(pairwise)
        if n == 1:
            return np.ones(1)
        centrality = (pairwise.sum(axis=1) - np.diag(pairwise)) / (n - 1)
        top, middle = float(centrality.max()), float(np.median(centrality))
        central = np.clip((centrality - middle) / max(top - middle, 1e-9), 0.0, 1.0)
        spread = top - float(centrality.min())
        return centrality + self.config.lead_bias * spread * position_prior(n) * central


@dataclass
class AbstractiveConfig:
    """Generation length and the chunk size (in tokens) above which a document is split."""

    max_new_tokens: int = 128
    chunk_tokens: int = 1024


class AbstractiveSummarizer:
    """A seq2seq summariser (BART/T5 style) or an instruct LM prompted for a summary."""

    batch_size = 1

    def __init__(self, loaded: LoadedModel, config: AbstractiveConfig | None = None) -> None:
        self.loaded = loaded
        self.config = config or AbstractiveConfig()
        self.tokenizer = loaded.tokenizer
        self.is_seq2seq = loaded.kind == "seq2seq"
        limit = self._context_limit()
        # A decoder's context holds the prompt template (~80 tokens), the chunk and the generated summary.
        overhead = 0 if self.is_seq2seq else 80 + self.config.max_new_tokens
        self.chunk_tokens = max(32, min(self.config.chunk_tokens, limit - overhead))

    def _context_limit(self) -> int:
        return input_limit(self.loaded, 1_000_000)

    def summarize_many(self, texts: list[str]) -> list[dict]:
        return [self.summarize(t) for t in texts]

    def summarize(self, text: str, progress: ProgressFn | None = None) -> dict:
        """Summarise ``text``; chunks longer ones, summarises each chunk, then summarises the joined summaries."""
        report = progress or (lambda _f, _d: None)
        if not text.strip():
            return {"summary": "", "chunks": 0, "levels": 0}
        current, level, chunks_total = text, 0, 0
        while True:
            level += 1
            chunks = self.chunk(current)
            chunks_total += len(chunks)
            if len(chunks) == 1 or level >= MAX_LEVELS:
                report(0.9, Msg.of("summarize.progress_final", level=level))
                summary = self._summarize_one(" ".join(chunks))
                return {"summary": summary, "chunks": chunks_total, "levels": level}
            parts = []
            for i, chunk in enumerate(chunks):
                report(min(0.85, 0.85 * (i / len(chunks))),
                       Msg.of("summarize.progress_chunk", level=level, chunk=i + 1, chunks=len(chunks)))
                parts.append(self._summarize_one(chunk))
            joined = join_sentences([p for p in parts if p])
            if count_tokens(self.tokenizer, joined) >= count_tokens(self.tokenizer, current):
                joined = self._truncate(joined)  # summaries did not shrink: force progress
            current = joined

    def chunk(self, text: str) -> list[str]:
        """Split ``text`` at sentence boundaries into pieces of at most ``chunk_tokens`` tokens."""
        chunks: list[str] = []
        current: list[str] = []
        size = 0
        for sentence in split_sentences(text):
            n = count_tokens(self.tokenizer, sentence)
            if n > self.chunk_tokens:
                sentence, n = self._truncate(sentence), self.chunk_tokens
            if current and size + n > self.chunk_tokens:
                chunks.append(join_sentences(current))
                current, size = [], 0
            current.append(sentence)
            size += n
        if current:
            chunks.append(join_sentences(current))
        return chunks or [text]

    def _truncate(self, text: str) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.chunk_tokens]
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _summarize_one(self, text: str) -> str:
        import torch

        with torch.inference_mode():
            return self._generate_summary(text)

    def _generate_summary(self, text: str) -> str:
        if not self.is_seq2seq:
            lang = " in Chinese" if has_cjk(text) else ""
            prompt = f"Summarize the following text in two or three sentences{lang}.\n\nText:\n{text}"
            return generate(self.loaded, prompt, GenerationConfig(self.config.max_new_tokens))
        model, tok = self.loaded.model, self.tokenizer
        prefix = "summarize: " if getattr(model.config, "model_type", "") in ("t5", "mt5") else ""
        enc = tok(prefix + text, return_tensors="pt", truncation=True, max_length=self._context_limit())
        enc.pop("token_type_ids", None)  # BERT-style tokenizers of some BART models add them; generate refuses
        out = model.generate(
            **enc.to(self.loaded.device), max_new_tokens=self.config.max_new_tokens, do_sample=False,
            no_repeat_ngram_size=3,
        )
        return tok.decode(out[0], skip_special_tokens=True).strip()


class SummaryMethod(StrEnum):
    """How to summarise (the values the API accepts)."""

    EXTRACTIVE = "extractive"
    ABSTRACTIVE = "abstractive"


SUMMARY_METHODS = tuple(m.value for m in SummaryMethod)
ABSTRACTIVE_KINDS = ("seq2seq", "causal-lm")
MAX_NEW_TOKENS = 512


@dataclass(frozen=True)
class SummarizerSpec:
    """The Summarize tab's settings: method, model, sentence count or ratio, generation length."""

    method: str = SummaryMethod.EXTRACTIVE.value
    model: str = ""
    sentences: float = 3
    ratio: float = 0.0
    max_new_tokens: float = 128


def build_summarizer(manager: ModelManager, spec: SummarizerSpec,
                     progress: ProgressFn | None = None) -> ExtractiveSummarizer | AbstractiveSummarizer:
    """An extractive or abstractive summariser for ``spec`` (default models: MiniLM, SmolLM2)."""
    from pipelines.tasks.embeddings import DEFAULT_ENCODER
    from pipelines.tasks.lm_prompting import DEFAULT_LM

    method = (spec.method or "").strip().lower()
    if method not in SUMMARY_METHODS:
        raise InputError("summarize.unknown_method")
    defaults = {SummaryMethod.EXTRACTIVE.value: DEFAULT_ENCODER, SummaryMethod.ABSTRACTIVE.value: DEFAULT_LM}
    ref = (spec.model or "").strip() or defaults[method]
    if method == SummaryMethod.EXTRACTIVE:
        config = ExtractiveConfig(count=int(spec.sentences or 3), ratio=float(spec.ratio) if spec.ratio else None)
        return ExtractiveSummarizer(EmbeddingTask(manager.load(ref, "encoder", progress=progress)), config)
    kind = manager.default_kind(manager.resolve(ref))
    if kind not in ABSTRACTIVE_KINDS:
        raise InputError("summarize.wrong_kind", model=ref, kind=kind)
    tokens = max(16, min(MAX_NEW_TOKENS, int(spec.max_new_tokens or 128)))
    return AbstractiveSummarizer(manager.load(ref, kind, progress=progress), AbstractiveConfig(tokens))
