"""Question answering over a context: an extractive QA model (its answer is a span by construction), or a causal
LM used to score candidate spans (:class:`pipelines.extraction.grounded_qa.GroundedQA`) -- never free text."""

from __future__ import annotations

from typing import Any

from pipelines.errors import InputError
from pipelines.extraction.grounded_qa import QAResult, check_question
from pipelines.extraction.spans import locate
from pipelines.limits import token_limit as input_limit
from pipelines.models.manager import LoadedModel, ModelManager
from pipelines.tasks.base import Task

DEFAULT_LM = "smollm2-135m-instruct"
DEFAULT_NER = "spacy-en-sm"
__all__ = ["DEFAULT_LM", "ExtractiveQA", "QAResult", "answer_question", "check_question", "locate",
           "make_answerer", "qa_highlight"]


class ExtractiveQA(Task[tuple[str, str], dict]):
    """A span-prediction QA model; long contexts are read in overlapping windows."""

    def __init__(self, loaded: LoadedModel, max_length: int = 384, stride: int = 128, max_answer_tokens: int = 30):
        super().__init__(loaded)
        import inspect

        if not getattr(self.tokenizer, "is_fast", False):
            raise InputError("extract.no_fast_tokenizer", model=loaded.ref.name)
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
        import torch

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

    def answer(self, question: str, context: str) -> QAResult:
        best = self((question, context))
        found = bool(best["answer"].strip())
        return QAResult(best["answer"], found, best["start"], best["end"], best["start"], best["end"],
                        score=best["score"], label="answer")


def make_answerer(manager: ModelManager, ref: str = "", progress: Any = None, encoder_ref: str = "minilm-l6",
                  ctx: Any = None, engine: str = "auto") -> Any:
    """An object with ``answer(question, context) -> QAResult``: extractive for a QA model, grounded for an LM.

    With the app context ``ctx`` the LM may be remote (``remote:<endpoint>/<model>``) or run by llama.cpp
    (``engine``; see :func:`~pipelines.generation.task_lm.task_lm`).
    """
    from pipelines.engines.remote import is_remote
    from pipelines.extraction.grounded_qa import GroundedQA
    from pipelines.tasks.embeddings import get_encoder

    ref = (ref or "").strip() or DEFAULT_LM
    remote = is_remote(ref)
    if remote and ctx is None:
        raise InputError("extract.remote_needs_app", model=ref)
    kind = "causal-lm" if remote else manager.default_kind(manager.resolve(ref))
    if kind == "causal-lm":
        if ctx is not None:
            from pipelines.generation.task_lm import task_lm

            lm: Any = task_lm(ctx, ref, engine or "auto", progress)
        else:
            lm = manager.load(ref, "causal-lm", progress=progress)
        nlp = manager.load(DEFAULT_NER, progress=progress).model
        return GroundedQA(nlp, get_encoder(manager, encoder_ref), lm)
    if kind not in ("qa", "encoder"):
        raise InputError("extract.not_a_qa_model", model=ref, kind=kind)
    return ExtractiveQA(manager.load(ref, "qa", progress=progress))


def answer_question(manager: ModelManager, ref: str, question: str, context: str, progress: Any = None,
                    ctx: Any = None, engine: str = "auto") -> QAResult:
    """Extractive QA for a QA model; for a causal LM (local or remote), the best-supported span of the context."""
    check_question(question, context)
    return make_answerer(manager, ref, progress, ctx=ctx, engine=engine).answer(question, context)


def qa_highlight(context: str, result: QAResult) -> dict:
    """HighlightedText value: the evidence sentence, with the answer span inside it marked ``answer``."""
    pieces: list[tuple[str, int, int]] = []
    a_start, a_end = result.answer_start, result.answer_end
    if result.start is not None and result.end:
        if a_start is not None and a_end and result.start <= a_start and a_end <= result.end:
            pieces = [("evidence", result.start, a_start), ("answer", a_start, a_end), ("evidence", a_end, result.end)]
        else:
            pieces = [("evidence" if result.evidence else "answer", result.start, result.end)]
    elif a_start is not None and a_end:
        pieces = [("answer", a_start, a_end)]
    return {"text": context, "entities": [{"entity": label, "start": s, "end": e}
                                          for label, s, e in pieces if e > s and context[s:e].strip()]}
