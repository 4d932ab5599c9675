"""Attention over a generated answer: the prompt and the answer as one sequence, the boundary between them kept.

The Generate tab remembers the last exchange of each browser session (:func:`remember_exchange`, stored on
``ctx.sessions``); the Attention tab reads it (:func:`last_exchange`). Tabs never import each other: both use this
module. The result is an ordinary :class:`~pipelines.attention.AttentionResult` whose ``sentence_b_start`` is the
first answer token, so bertviz's views split prompt and answer and the heatmaps draw a line there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.attention.extract import DEFAULT_MAX_TOKENS, clamp_max_tokens, load_for_attention, position_limit
from pipelines.errors import InputError
from pipelines.limits import Limits
from pipelines.messages import Msg

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from pipelines.attention.extract import AttentionResult
    from pipelines.sessions import Sessions

LAST_EXCHANGE = "generate.last_exchange"  # the per-session value name (ctx.sessions.set_value/get_value)
BOUNDARY_COLOUR = "#dc2626"


@dataclass(frozen=True)
class Exchange:
    """A prompt and the answer generated for it, with the model, the prompt's mode, the precision, the system
    text, the prompt as the model read it (``formatted``, e.g. with the chat template) and the answer's token ids
    when known."""

    prompt: str
    answer: str
    model: str = ""
    mode: str = "auto"
    precision: str = "auto"
    system: str = ""
    formatted: str = ""
    answer_ids: tuple[int, ...] = ()
    prompt_ids: tuple[int, ...] = ()  # the prompt's ids as the model read them (chat template, history)

    @property
    def read_prompt(self) -> str:
        """The prompt as the model read it (the typed prompt when that is unknown)."""
        return self.formatted or self.prompt


def remember_exchange(sessions: Sessions, session: str, prompt: str, answer: str, model: str = "",
                      **details: Any) -> None:
    """Keep the session's last prompt and answer for the Attention tab and the token inspector (called by the
    Generate tab; ``details``: ``mode``, ``precision``, ``system``, ``formatted``, ``answer_ids``,
    ``prompt_ids``)."""
    ids = {name: tuple(int(i) for i in details.pop(name, ()) or ()) for name in ("answer_ids", "prompt_ids")}
    known = {k: str(v or "") for k, v in details.items() if k in ("mode", "precision", "system", "formatted")}
    sessions.set_value(session, LAST_EXCHANGE, Exchange(prompt or "", answer or "", model or "", **ids, **known))


def last_exchange(sessions: Sessions, session: str) -> Exchange | None:
    """The session's last prompt and answer from the Generate tab, if there is one."""
    value = sessions.get_value(session, LAST_EXCHANGE)
    return value if isinstance(value, Exchange) else None


def generated_attention(manager: Any, ref: str, prompt: str, answer: str, max_tokens: Any = DEFAULT_MAX_TOKENS,
                        progress: Any = None, limits: Limits | None = None) -> AttentionResult:
    """Attention of every layer and head over ``prompt`` followed by ``answer`` (boundary: ``sentence_b_start``)."""
    from pipelines.attention.task import AttentionTask

    class GeneratedAttentionTask(AttentionTask):
        """The attention task with the prompt and the answer tokenized apart and joined."""

        def preprocess(self, inputs: tuple[str, str, Any]) -> dict:
            return _prompt_answer_batch(self, *inputs)

    task = GeneratedAttentionTask(load_for_attention(manager, ref, progress), limits)
    return task((prompt, answer, max_tokens))


def _prompt_answer_batch(task: Any, prompt: str, answer: str, max_tokens: Any) -> dict:
    """The batch of :class:`AttentionTask`: ids of prompt + answer, cut from the prompt's start when too long."""
    import torch

    prompt, prompt_cut = task.limits.cut(prompt or "")
    answer, answer_cut = task.limits.cut(answer or "")
    if not prompt.strip() or not answer.strip():
        raise InputError("insight.err.prompt_answer")
    notes = [n for n in (prompt_cut, answer_cut) if n is not None]
    cap = clamp_max_tokens(max_tokens)
    limit = position_limit(task.model)
    if limit is not None and cap > limit:
        cap = limit
        notes.append(Msg.of("attention.note.positions_cap", limit=limit))
    prompt_ids = task.tokenizer(prompt)["input_ids"]
    answer_ids = task.tokenizer(answer, add_special_tokens=False)["input_ids"]
    total = len(prompt_ids) + len(answer_ids)
    answer_ids = answer_ids[:cap - 1]
    keep_prompt = max(1, cap - len(answer_ids))
    if len(prompt_ids) > keep_prompt:  # keep the prompt's end: it is what the answer follows
        notes.insert(0, Msg.of("insight.note.prompt_cut", total=total, kept=cap, dropped=len(prompt_ids) - keep_prompt))
        prompt_ids = prompt_ids[-keep_prompt:]
    elif total > cap:
        notes.insert(0, Msg.of("insight.note.answer_cut", total=total, kept=cap))
    ids = prompt_ids + answer_ids
    device = task.module.device
    batch = {"input_ids": torch.tensor([ids], device=device), "attention_mask": torch.ones(1, len(ids), device=device,
                                                                                           dtype=torch.long)}
    return {"inputs": batch, "tokens": task.tokenizer.convert_ids_to_tokens(ids), "total": total, "cap": cap,
            "b_start": len(prompt_ids), "notes": notes}


def mark_boundary(fig: go.Figure | None, result: AttentionResult | None) -> go.Figure | None:
    """Draw the prompt/answer boundary (or a sentence pair's) on a token x token heatmap or token bar chart."""
    start = getattr(result, "sentence_b_start", None)
    if fig is None or not start:
        return fig
    trace = fig.data[0] if fig.data else None
    x = getattr(trace, "x", None)
    if x is None or len(x) != getattr(result, "num_tokens", -1):
        return fig  # a grid of thumbnails or a figure of something else: no token axis to mark
    line = {"color": BOUNDARY_COLOUR, "width": 2, "dash": "dot"}
    fig.add_vline(x=start - 0.5, line=line)
    if getattr(trace, "type", "") == "heatmap":
        fig.add_hline(y=start - 0.5, line=line)
    return fig
