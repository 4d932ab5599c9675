"""Sentence embeddings: an encoder (MiniLM by default) with attention-masked mean pooling, L2-normalised."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.limits import token_limit as input_limit
from pipelines.tasks.base import Task

if TYPE_CHECKING:
    from pipelines.models.manager import LoadedModel, ModelManager
    from pipelines.tasks.microbatch import MicroBatcher
from pipelines.tasks.batch import length_sorted_batches
from pipelines.tasks.parallel import run_encoded

DEFAULT_ENCODER = "minilm-l6"


class EmbeddingTask(Task[list[str], np.ndarray]):
    """``texts -> (n, dim)`` float32 unit vectors, so a dot product is the cosine similarity."""

    def __init__(self, loaded: LoadedModel, max_length: int = 256, batcher: MicroBatcher | None = None) -> None:
        super().__init__(loaded)
        self.max_length = input_limit(loaded, max_length)
        self.batcher = batcher  # set: concurrent callers on this model share forward passes (ctx.batcher)

    def preprocess(self, inputs: list[str]) -> Any:
        batch = self.tokenizer(_readable(inputs), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return batch.to(self.loaded.device)

    def forward(self, batch: Any) -> Any:
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return pooled.float().cpu().numpy()

    def postprocess(self, outputs: Any) -> np.ndarray:
        norms = np.linalg.norm(outputs, axis=1, keepdims=True)
        return (outputs / np.maximum(norms, 1e-12)).astype(np.float32)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embed any number of texts in mini-batches sorted by token length (little padding), in input order.

        With a ``batcher``, texts other callers send at the same time to this model join the same mini-batches.
        """
        if self.batcher is not None and texts:
            key = ("encode", self.loaded.key, self.max_length, batch_size)
            rows = self.batcher.run(key, list(texts), lambda pooled: list(self._encode(pooled, batch_size)))
            return np.stack(rows).astype(np.float32, copy=False)
        return self._encode(texts, batch_size)

    def _encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """:meth:`encode` for this caller's texts only."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encoded = self.tokenizer(_readable(texts), truncation=True, max_length=self.max_length)
        batches = length_sorted_batches([len(ids) for ids in encoded["input_ids"]], batch_size)
        for idx, vectors in zip(batches, run_encoded(self, encoded, batches), strict=True):
            out[idx] = vectors
        return out

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)


def _readable(texts: list[str]) -> list[str]:
    """``texts`` with each empty or blank one as a single space (the tokenizer still gives it a row)."""
    return [t if t.strip() else " " for t in texts]


def get_encoder(manager: ModelManager, ref: str = DEFAULT_ENCODER, progress: Any = None,
                batcher: MicroBatcher | None = None) -> EmbeddingTask:
    """The shared sentence encoder (loaded once by the manager's cache); ``batcher`` shares forward passes."""
    return EmbeddingTask(manager.load(ref or DEFAULT_ENCODER, "encoder", progress=progress), batcher=batcher)


def mmr(doc_scores: np.ndarray, pairwise: np.ndarray, k: int, diversity: float = 0.3) -> list[int]:
    """Maximal marginal relevance: pick ``k`` items by relevance minus ``diversity`` times redundancy."""
    k = min(k, len(doc_scores))
    if k <= 0:
        return []
    chosen = [int(np.argmax(doc_scores))]
    while len(chosen) < k:
        redundancy = pairwise[:, chosen].max(axis=1)
        score = (1 - diversity) * doc_scores - diversity * redundancy
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    return chosen


def softmax(values: np.ndarray | list[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    arr = np.exp(arr - arr.max())
    return arr / arr.sum()
