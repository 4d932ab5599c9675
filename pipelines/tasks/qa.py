"""Question answering over a context: an extractive QA model, or (offline) the LM answers and the
supporting sentence is found by embedding similarity."""

from __future__ import annotations

import inspect
import re
from typing import Any

import torch

from pipelines.errors import InputError
from pipelines.limits import token_limit as input_limit
from pipelines.models.manager import LoadedModel
from pipelines.tasks.base import Task
from pipelines.tasks.embeddings import EmbeddingTask
from pipelines.tasks.lm_prompting import GenerationConfig, generate, truncate_tokens
from pipelines.tasks.sentences import split_sentences


def check_question(question: str, context: str) -> None:
    if not (question or "").strip():
        raise InputError("Type a question.")
    if not (context or "").strip():
        raise InputError("Paste the context the answer should come from.")


def locate(text: str, fragment: str, start: int = 0) -> tuple[int, int] | None:
    """Character span of ``fragment`` in ``text``, tolerating different whitespace."""
    if not fragment.strip():
        return None
    found = text.find(fragment, start)
    if found >= 0:
        return found, found + len(fragment)
    pattern = r"\s*".join(re.escape(part) for part in fragment.split())
    match = re.compile(pattern).search(text, start)
    return (match.start(), match.end()) if match else None


class ExtractiveQA(Task[tuple[str, str], dict]):
    """A span-prediction QA model; long contexts are read in overlapping windows."""

    def __init__(self, loaded: LoadedModel, max_length: int = 384, stride: int = 128, max_answer_tokens: int = 30):
        super().__init__(loaded)
        if not getattr(self.tokenizer, "is_fast", False):
            raise InputError(f"'{loaded.ref.name}' has no fast tokenizer, which answer spans need.")
        self.max_length = input_limit(loaded, max_length)
        self.stride, self.max_answer_tokens = min(stride, self.max_length // 3), max_answer_tokens
        self.accepted = set(inspect.signature(self.model.forward).parameters)

    def preprocess(self, inputs: tuple[str, str]) -> Any:
        question, context = inputs
        check_question(question, context)
        enc = self.tokenizer(
            question.strip(), context, truncation="only_second", max_length=self.max_length, stride=self.stride,
            return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="pt",
        )
        sequence_ids = [enc.sequence_ids(i) for i in range(enc["input_ids"].shape[0])]
        offsets = enc.pop("offset_mapping").tolist()
        model_inputs = {k: v.to(self.loaded.device) for k, v in enc.items() if k in self.accepted}
        return {"inputs": model_inputs, "offsets": offsets, "sequence_ids": sequence_ids, "context": context}

    def forward(self, batch: Any) -> Any:
        out = self.model(**batch["inputs"])
        return {**batch, "start": out.start_logits.float().cpu(), "end": out.end_logits.float().cpu()}

    def postprocess(self, outputs: Any) -> dict:
        best = {"answer": "", "score": 0.0, "start": 0, "end": 0}
        for i, seq_ids in enumerate(outputs["sequence_ids"]):
            in_context = torch.tensor([s == 1 for s in seq_ids])
            if not in_context.any():
                continue
            start = outputs["start"][i].masked_fill(~in_context, -1e9).softmax(-1)
            end = outputs["end"][i].masked_fill(~in_context, -1e9).softmax(-1)
            pair = torch.triu(start[:, None] * end[None, :])
            pair = torch.tril(pair, diagonal=self.max_answer_tokens - 1)
            flat = int(pair.argmax())
            s, e = divmod(flat, pair.shape[1])
            score = float(pair[s, e])
            if score > best["score"]:
                char_start, char_end = outputs["offsets"][i][s][0], outputs["offsets"][i][e][1]
                best = {"answer": outputs["context"][char_start:char_end], "score": round(score, 4),
                        "start": char_start, "end": char_end}
        return best

    def answer(self, question: str, context: str) -> dict:
        return self((question, context))


def lm_answer(lm: LoadedModel, encoder: EmbeddingTask, question: str, context: str,
              max_context_tokens: int = 1200) -> dict:
    """The LM answers from the context; the context sentence closest to question + answer is the evidence."""
    check_question(question, context)
    clipped, cut = truncate_tokens(lm.tokenizer, context, max_context_tokens)
    prompt = (f"Context: {clipped}\n\nQuestion: {question.strip()}\n"
              "Answer in a few words, using only the context.")
    reply = generate(lm, prompt, GenerationConfig(max_new_tokens=64))
    sentences = split_sentences(context)
    result = {"answer": reply, "score": None, "start": None, "end": None, "evidence": "", "note": None}
    if cut:
        result["note"] = f"The LM read only the first {max_context_tokens} tokens of the context."
    if sentences:
        vectors = encoder.encode([f"{question} {reply}", *sentences])
        sims = vectors[1:] @ vectors[0]
        best = int(sims.argmax())
        span = locate(context, sentences[best])
        result.update(evidence=sentences[best], score=round(float(sims[best]), 4))
        if span:
            result.update(start=span[0], end=span[1])
    return result


def qa_highlight(context: str, result: dict) -> dict:
    """HighlightedText value: the answer span (extractive) or the supporting sentence (LM)."""
    entities = []
    if result.get("start") is not None and result.get("end"):
        label = "evidence" if result.get("evidence") else "answer"
        entities.append({"entity": label, "start": result["start"], "end": result["end"]})
    return {"text": context, "entities": entities}


def answer_question(manager, ref: str, question: str, context: str, encoder_ref: str = "minilm-l6",
                    progress=None) -> dict:
    """Extractive QA for a QA model; for a causal LM, its answer plus the supporting sentence."""
    from pipelines.tasks.embeddings import get_encoder
    from pipelines.tasks.lm_prompting import DEFAULT_LM

    check_question(question, context)
    ref = (ref or "").strip() or DEFAULT_LM
    kind = manager.default_kind(manager.resolve(ref))
    if kind == "causal-lm":
        lm = manager.load(ref, "causal-lm", progress=progress)
        return lm_answer(lm, get_encoder(manager, encoder_ref), question, context)
    if kind not in ("qa", "encoder"):
        raise InputError(f"'{ref}' is a {kind} model; answers need a question-answering model or an instruct LM.")
    return ExtractiveQA(manager.load(ref, "qa", progress=progress)).answer(question, context)
