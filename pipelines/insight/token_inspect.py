"""Click a token: why did the model write it? For one generated token (step ``index`` of an answer to a prompt):

- the top-10 alternatives at that step (the generation engine's own next-token distribution for the prefix, the
  same as ``/next_tokens`` on that prefix),
- the attention of that step (the query at the position that produced the token) over the prompt and the earlier
  generated tokens, per layer, averaged over heads and per head (rows sum to 1; zero on later positions),
- the attribution of the token's log-probability to every earlier token (integrated gradients with Captum's
  ``LayerIntegratedGradients`` on the input embeddings, every step in one batch; or gradient x input).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.attention.extract import load_for_attention, pretty_token, unwrap_peft
from pipelines.errors import InputError
from pipelines.insight.attribution import DEFAULT_STEPS, MAX_STEPS, AttributionMethod, check_attribution
from pipelines.insight.common import Described, describe, pretty
from pipelines.insight.token_attribution import attribute_token, keep_last
from pipelines.messages import Msg

if TYPE_CHECKING:
    from pipelines.context import AppContext

TOP_ALTERNATIVES = 10
MAX_CONTEXT = 512


@dataclass
class InspectResult:
    """One generated token explained, as plain data (positions index ``tokens``: prompt, then the answer)."""

    tokens: list[str]
    prompt_tokens: int
    index: int  # the generated token's index in the answer
    token: str
    token_id: int
    alternatives: list[dict[str, Any]]  # [{"token", "prob", "id"}], most likely first
    attention: np.ndarray  # (layers, len(tokens)): mean over heads of the producing query's row
    attention_heads: np.ndarray  # (layers, heads, len(tokens))
    attributions: list[float]  # one per position before the token (empty until :meth:`TokenInspector.attribute`)
    described: Described
    notes: list[Msg] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # the token ids of ``tokens``
    method: AttributionMethod = AttributionMethod.INTEGRATED_GRADIENTS
    steps: int = DEFAULT_STEPS  # integrated-gradient steps asked for
    ref: str = ""  # the model reference inspected (for :meth:`TokenInspector.attribute`)

    @property
    def position(self) -> int:
        """The token's position in ``tokens``."""
        return self.prompt_tokens + self.index

    def to_json(self, lang: str = "en") -> dict[str, Any]:
        return {**self.described.as_dict(lang), "index": self.index, "position": self.position,
                "token": self.token, "token_id": self.token_id, "tokens": self.tokens,
                "prompt_tokens": self.prompt_tokens, "alternatives": self.alternatives,
                "attention": np.round(self.attention, 6).tolist(), "attention_shape": ["layer", "key"],
                "attributions": [round(float(a), 6) for a in self.attributions],
                "notes": [note.render(lang) for note in self.notes]}


class TokenInspector:
    """Explains one generated token of a local causal LM (through the app's generation service)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def inspect(self, ref: str, prompt: str, answer: str, index: Any, settings: Any = None, system: str = "",
                attribution: str = "", steps: int = DEFAULT_STEPS, progress: Any = None,
                answer_ids: list[int] | tuple[int, ...] = (),
                prompt_ids: list[int] | tuple[int, ...] = ()) -> InspectResult:
        """The whole panel: :meth:`first_look` (alternatives and attention), then :meth:`attribute`."""
        first = self.first_look(ref, prompt, answer, index, settings, system, attribution, steps, progress,
                                answer_ids, prompt_ids)
        return self.attribute(first, progress)

    def first_look(self, ref: str, prompt: str, answer: str, index: Any, settings: Any = None, system: str = "",
                   attribution: str = "", steps: int = DEFAULT_STEPS, progress: Any = None,
                   answer_ids: list[int] | tuple[int, ...] = (),
                   prompt_ids: list[int] | tuple[int, ...] = ()) -> InspectResult:
        """The alternatives and the attention of one generated token (attributions: :meth:`attribute`).

        ``settings`` is a :class:`GenerationSettings` (or its dict): its mode formats the prompt as generation
        did, its precision picks the engine's copy for the alternatives. ``answer_ids`` (the generated ids, when
        known) are used instead of tokenizing ``answer`` again; ``prompt_ids`` (the prompt as the model read it: chat
        template, earlier turns) instead of formatting ``prompt`` again."""
        from pipelines.generation.engine import NextTokenTask
        from pipelines.generation.settings import GenerationSettings

        if not answer and not answer_ids:
            raise InputError("insight.err.prompt_answer")
        chosen = check_attribution(attribution)
        steps = max(2, min(int(steps or DEFAULT_STEPS), MAX_STEPS))
        if not isinstance(settings, GenerationSettings):
            settings = GenerationSettings.from_dict(settings or {})
        settings = settings.validated()
        service = self.ctx.generation
        engine = service.engine(ref, settings.precision, progress, needs_internals=True)
        prompt_ids = list(prompt_ids) or service.prepare(engine, prompt, settings.mode, system).ids
        answer_ids = list(answer_ids) or engine.loaded.tokenizer(answer, add_special_tokens=False)["input_ids"]
        try:
            step = int(index)
        except (TypeError, ValueError):
            raise InputError("insight.err.token_index", count=len(answer_ids)) from None
        if not 0 <= step < len(answer_ids):
            raise InputError("insight.err.token_index", count=len(answer_ids))
        ids = [*prompt_ids, *answer_ids[: step + 1]]
        notes: list[Msg] = []
        if len(ids) > MAX_CONTEXT:
            notes.append(Msg.of("insight.note.context_cut", total=len(ids), kept=MAX_CONTEXT))
        keep = min(len(ids), MAX_CONTEXT)
        ids, prompt_len = ids[-keep:], len(prompt_ids) - (len(ids) - keep)
        if prompt_len < 1:
            raise InputError("insight.err.token_index", count=len(answer_ids))
        prefix, token_id = ids[:-1], ids[-1]
        loaded = load_for_attention(self.ctx.manager, ref, progress)
        heads, logits = _attention_row(loaded.model, prefix)
        if _same_weights(engine.loaded, loaded):  # the step's own forward pass gives the alternatives
            alternatives = _top(logits, engine.loaded.tokenizer)
        else:  # another precision answered: its own distribution, as /next_tokens gives it
            alternatives = NextTokenTask(engine.loaded, k=TOP_ALTERNATIVES, compute=service.compute)(prefix)
        tokenizer = loaded.tokenizer
        return InspectResult(
            tokens=[pretty(tokenizer.decode([i])) or pretty_token(tokenizer.convert_ids_to_tokens(i)) for i in ids],
            prompt_tokens=prompt_len, index=step, token=pretty(tokenizer.decode([token_id])), token_id=int(token_id),
            alternatives=alternatives, attention=heads.mean(axis=1), attention_heads=heads, attributions=[],
            described=describe(loaded, chosen.msg(steps)), notes=notes, ids=ids, method=chosen, steps=steps,
            ref=ref)

    def attribute(self, result: InspectResult, progress: Any = None) -> InspectResult:
        """``result`` with its attributions (the slow part of the panel: integrated gradients)."""
        loaded = load_for_attention(self.ctx.manager, result.ref, progress)
        scores, used, note = attribute_token(loaded, result.ids[:-1], result.token_id, result.method, result.steps)
        return replace(result, attributions=[float(s) for s in scores],
                       described=describe(loaded, result.method.msg(used)),
                       notes=[*result.notes, *([note] if note is not None else [])])


def _same_weights(a: Any, b: Any) -> bool:
    """Whether two loaded copies hold the same float32 weights (they may differ in attention kernel only)."""
    ka, kb = a.key, b.key
    return (ka.model, ka.adapter, ka.device) == (kb.model, kb.adapter, kb.device) and ka.dtype == kb.dtype == "float32"


def _top(logits: Any, tokenizer: Any) -> list[dict[str, Any]]:
    """The top alternatives of one position's logits, as :class:`NextTokenTask` gives them."""
    import torch

    from pipelines.generation.engine import PieceDecoder

    probs = torch.softmax(logits.float(), dim=-1)
    top = torch.topk(probs, min(TOP_ALTERNATIVES, probs.shape[-1]))
    decoder = PieceDecoder(tokenizer)
    return [{"token": decoder.token_text(i), "prob": float(p), "id": int(i)}
            for i, p in zip(top.indices.tolist(), top.values.tolist(), strict=True)]


def _attention_row(model: Any, prefix: list[int]) -> tuple[np.ndarray, Any]:
    """(layers, heads, len(prefix) + 1): the attention of the query that produced the next token (zero on that
    token), and that query's logits (the next-token distribution), from one forward pass over the prefix."""
    import torch

    inner = unwrap_peft(model)
    device = next(inner.parameters()).device
    with torch.inference_mode():
        out = inner(input_ids=torch.tensor([prefix], device=device), output_attentions=True, return_dict=True,
                    use_cache=False, **keep_last(inner))
    if not out.attentions or any(a is None for a in out.attentions):
        raise InputError("attention.err.no_weights")
    rows = np.stack([a[0, :, -1, :].float().cpu().numpy() for a in out.attentions]).astype(np.float32)
    return np.pad(rows, ((0, 0), (0, 0), (0, 1))), out.logits[0, -1]
