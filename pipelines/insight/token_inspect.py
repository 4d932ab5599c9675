"""Click a token: why did the model write it? For one generated token (step ``index`` of an answer to a prompt):

- the top-10 alternatives at that step (the generation engine's own next-token distribution for the prefix, the
  same as ``/next_tokens`` on that prefix),
- the attention of that step (the query at the position that produced the token) over the prompt and the earlier
  generated tokens, per layer, averaged over heads and per head (rows sum to 1; zero on later positions),
- the attribution of the token's log-probability to every earlier token (integrated gradients with Captum's
  ``LayerIntegratedGradients`` on the input embeddings, every step in one batch; or gradient x input).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.attention.extract import load_for_attention, pretty_token, unwrap_peft
from pipelines.errors import InputError
from pipelines.insight.attribution import DEFAULT_STEPS, MAX_STEPS, AttributionMethod, check_attribution
from pipelines.insight.common import Described, describe, pretty
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
    attributions: list[float]  # one per position before the token
    described: Described
    notes: list[Msg] = field(default_factory=list)

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
        """``settings`` is a :class:`GenerationSettings` (or its dict): its mode formats the prompt as generation
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
        alternatives = NextTokenTask(engine.loaded, k=TOP_ALTERNATIVES, compute=service.compute)(prefix)
        loaded = load_for_attention(self.ctx.manager, ref, progress)
        heads = _attention_row(loaded.model, ids)
        scores = _attribute(loaded, prefix, token_id, chosen, steps)
        tokenizer = loaded.tokenizer
        return InspectResult(
            tokens=[pretty(tokenizer.decode([i])) or pretty_token(tokenizer.convert_ids_to_tokens(i)) for i in ids],
            prompt_tokens=prompt_len, index=step, token=pretty(tokenizer.decode([token_id])), token_id=int(token_id),
            alternatives=alternatives, attention=heads.mean(axis=1), attention_heads=heads,
            attributions=[float(s) for s in scores], described=describe(loaded, chosen.msg(steps)), notes=notes)


def _attention_row(model: Any, ids: list[int]) -> np.ndarray:
    """(layers, heads, len(ids)): the attention of the query that produced the last token (zero after it)."""
    import torch

    inner = unwrap_peft(model)
    device = next(inner.parameters()).device
    with torch.inference_mode():
        out = inner(input_ids=torch.tensor([ids], device=device), output_attentions=True, return_dict=True,
                    use_cache=False)
    if not out.attentions or any(a is None for a in out.attentions):
        raise InputError("attention.err.no_weights")
    query = len(ids) - 2  # the position whose prediction was the last token
    return np.stack([a[0, :, query, :].float().cpu().numpy() for a in out.attentions]).astype(np.float32)


def _attribute(loaded: Any, prefix: list[int], token_id: int, method: AttributionMethod, steps: int) -> np.ndarray:
    """Attribution of log p(token | prefix) to each prefix token, summed over the embedding dimensions."""
    import torch
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

    inner = unwrap_peft(loaded.model)
    layer = inner.get_input_embeddings()
    device = next(inner.parameters()).device
    ids = torch.tensor([prefix], device=device)

    def forward(input_ids: Any) -> Any:
        logits = inner(input_ids=input_ids, use_cache=False).logits[:, -1].float()
        return torch.log_softmax(logits, dim=-1)[:, token_id]

    with torch.enable_grad():
        if method is AttributionMethod.GRADIENT_X_INPUT:
            attr = LayerGradientXActivation(forward, layer).attribute(ids)
        else:
            tokenizer = loaded.tokenizer
            special = set(tokenizer.all_special_ids)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
            baseline = torch.tensor([[i if i in special else pad for i in prefix]], device=device)
            attr = LayerIntegratedGradients(forward, layer).attribute(ids, baselines=baseline, n_steps=steps,
                                                                      internal_batch_size=steps)
    return attr[0].sum(-1).detach().float().cpu().numpy()
