"""Summarisation: extractive (MiniLM centrality + MMR) and abstractive (seq2seq or instruct LM), chunked
hierarchically when a document is longer than the model's context."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.errors import InputError
from pipelines.limits import token_limit as input_limit
from pipelines.messages import Msg
from pipelines.tasks.embeddings import EmbeddingTask, mmr
from pipelines.tasks.sentences import has_cjk, join_sentences, split_sentences

if TYPE_CHECKING:
    from pipelines.generation.task_lm import TaskLM
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
    """A seq2seq summariser (BART/T5 style) or an instruct LM prompted for a summary.

    ``lm`` is a loaded seq2seq model, or a :class:`~pipelines.generation.task_lm.TaskLM` (a loaded causal LM is
    wrapped in one): local, llama.cpp or a remote endpoint. A remote one summarises the chunks of a text, and
    the rows of a batch, several at a time.
    """

    batch_size = 1

    def __init__(self, lm: TaskLM | LoadedModel, config: AbstractiveConfig | None = None) -> None:
        from pipelines.generation.task_lm import as_task_lm

        self.config = config or AbstractiveConfig()
        self.is_seq2seq = getattr(lm, "kind", "") == "seq2seq"
        self.loaded = lm if self.is_seq2seq else None
        self.lm = None if self.is_seq2seq else as_task_lm(lm)
        self.tokenizer = lm.tokenizer if self.is_seq2seq else getattr(self.lm, "tokenizer", None)
        self.in_flight = 1 if self.is_seq2seq else max(1, int(getattr(self.lm, "max_in_flight", 1)))
        if self.in_flight > 1:
            self.batch_size = 4 * self.in_flight  # rows of a CSV batch go out several at a time
        limit = self._context_limit()
        # A decoder's context holds the prompt template (~80 tokens), the chunk and the generated summary.
        overhead = 0 if self.is_seq2seq else 80 + self.config.max_new_tokens
        self.chunk_tokens = max(32, min(self.config.chunk_tokens, limit - overhead))

    @property
    def label(self) -> str:
        """What writes the summaries (e.g. ``remote:lcp/smol``)."""
        return self.lm.label if self.lm is not None else self.loaded.key.model

    def _context_limit(self) -> int:
        return input_limit(self.loaded, 1_000_000) if self.is_seq2seq else int(self.lm.context)

    def _count(self, text: str) -> int:
        if self.is_seq2seq:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self.lm.count_tokens(text)

    def summarize_many(self, texts: list[str]) -> list[dict]:
        """Summaries of ``texts`` in order (a remote LM answers several texts at once)."""
        if self.in_flight > 1:
            from pipelines.engines.remote_batch import map_in_flight

            return map_in_flight(lambda t: self.summarize(t, concurrent=False), texts, self.in_flight)
        return [self.summarize(t) for t in texts]

    def summarize(self, text: str, progress: ProgressFn | None = None, concurrent: bool = True) -> dict:
        """Summarise ``text``; chunks longer ones, summarises each chunk, then summarises the joined summaries.

        ``concurrent=False``: the chunks are summarised one after another (the caller runs texts in parallel).
        """
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
                summary = self._summarize_all([" ".join(chunks)])[0]
                return {"summary": summary, "chunks": chunks_total, "levels": level}
            report(0.0, Msg.of("summarize.progress_chunk", level=level, chunk=1, chunks=len(chunks)))

            def chunk_done(done: int, total: int, level: int = level) -> None:
                report(min(0.85, 0.85 * done / total),
                       Msg.of("summarize.progress_chunk", level=level, chunk=min(done + 1, total), chunks=total))

            parts = self._summarize_all(chunks, chunk_done, concurrent)
            joined = join_sentences([p for p in parts if p])
            if self._count(joined) >= self._count(current):
                joined = self._truncate(joined)  # summaries did not shrink: force progress
            current = joined

    def chunk(self, text: str) -> list[str]:
        """Split ``text`` at sentence boundaries into pieces of at most ``chunk_tokens`` tokens."""
        chunks: list[str] = []
        current: list[str] = []
        size = 0
        for sentence in split_sentences(text):
            n = self._count(sentence)
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
        if not self.is_seq2seq:
            return self.lm.truncate(text, self.chunk_tokens)[0]
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.chunk_tokens]
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @staticmethod
    def prompt(text: str) -> str:
        """The instruction an instruct LM gets for one chunk (in Chinese for a Chinese text)."""
        lang = " in Chinese" if has_cjk(text) else ""
        return f"Summarize the following text in two or three sentences{lang}.\n\nText:\n{text}"

    def _summarize_all(self, texts: list[str], progress: Any = None, concurrent: bool = True) -> list[str]:
        """A summary of each of ``texts`` (an LM's replies in one call: a remote one answers them concurrently)."""
        if not self.is_seq2seq:
            prompts = [self.prompt(t) for t in texts]
            if concurrent:
                return self.lm.replies(prompts, max_new_tokens=self.config.max_new_tokens, progress=progress)
            return [self.lm.reply(p, max_new_tokens=self.config.max_new_tokens) for p in prompts]
        import torch

        out = []
        with torch.inference_mode():
            for i, text in enumerate(texts):
                out.append(self._seq2seq_summary(text))
                if progress is not None:
                    progress(i + 1, len(texts))
        return out

    def _seq2seq_summary(self, text: str) -> str:
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
    """The Summarize tab's settings: method, model, sentence count or ratio, generation length, and the engine
    of a local causal LM (``auto``, ``transformers``, ``llama.cpp``; ignored for other models)."""

    method: str = SummaryMethod.EXTRACTIVE.value
    model: str = ""
    sentences: float = 3
    ratio: float = 0.0
    max_new_tokens: float = 128
    engine: str = "auto"


def build_summarizer(manager: ModelManager, spec: SummarizerSpec, progress: ProgressFn | None = None,
                     ctx: Any = None) -> ExtractiveSummarizer | AbstractiveSummarizer:
    """An extractive or abstractive summariser for ``spec`` (default models: MiniLM, SmolLM2).

    With the app context ``ctx``, an abstractive summary may come from a remote model (``remote:<endpoint>/<model>``)
    or the llama.cpp engine (:func:`~pipelines.generation.task_lm.task_lm`).
    """
    from pipelines.engines.remote import is_remote
    from pipelines.tasks.embeddings import DEFAULT_ENCODER
    from pipelines.tasks.lm_prompting import DEFAULT_LM

    method = (spec.method or "").strip().lower()
    if method not in SUMMARY_METHODS:
        raise InputError("summarize.unknown_method")
    defaults = {SummaryMethod.EXTRACTIVE.value: DEFAULT_ENCODER, SummaryMethod.ABSTRACTIVE.value: DEFAULT_LM}
    ref = (spec.model or "").strip() or defaults[method]
    if method == SummaryMethod.EXTRACTIVE:
        if is_remote(ref):
            raise InputError("summarize.remote_extractive", model=ref)
        config = ExtractiveConfig(count=int(spec.sentences or 3), ratio=float(spec.ratio) if spec.ratio else None)
        return ExtractiveSummarizer(EmbeddingTask(manager.load(ref, "encoder", progress=progress)), config)
    tokens = max(16, min(MAX_NEW_TOKENS, int(spec.max_new_tokens or 128)))
    if is_remote(ref) and ctx is None:
        raise InputError("summarize.remote_needs_app", model=ref)
    kind = "causal-lm" if is_remote(ref) else manager.default_kind(manager.resolve(ref))
    if kind not in ABSTRACTIVE_KINDS:
        raise InputError("summarize.wrong_kind", model=ref, kind=kind)
    if kind == "causal-lm" and ctx is not None:
        from pipelines.generation.task_lm import task_lm

        return AbstractiveSummarizer(task_lm(ctx, ref, spec.engine or "auto", progress), AbstractiveConfig(tokens))
    return AbstractiveSummarizer(manager.load(ref, kind, progress=progress), AbstractiveConfig(tokens))
