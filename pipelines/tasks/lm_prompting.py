"""Prompting an instruct causal LM (SmolLM2 offline) through its chat template: generation and label scoring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.models.manager import LoadedModel

DEFAULT_LM = "smollm2-135m-instruct"
SYSTEM = "You are a precise assistant. Answer briefly and follow the requested format exactly."


@dataclass
class GenerationConfig:
    """Greedy decoding settings for task prompts."""

    max_new_tokens: int = 128
    repetition_penalty: float = 1.15
    max_prompt_tokens: int = 1536


def render_prompt(tokenizer, user: str, system: str = SYSTEM, prefill: str = "") -> str:
    """The chat-formatted prompt text ending where the assistant's reply starts (plus ``prefill``)."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = f"{system}\n\nUser: {user}\nAssistant:"
        prefill = f" {prefill}" if prefill else ""
    return text + prefill


def truncate_tokens(tokenizer, text: str, max_tokens: int) -> tuple[str, bool]:
    """Cut ``text`` to at most ``max_tokens`` tokens; return it and whether it was cut."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text, False
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True), True


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def generate(loaded: LoadedModel, user: str, config: GenerationConfig | None = None, prefill: str = "",
             system: str = SYSTEM) -> str:
    """Greedy reply of the LM to one user message (``prefill`` is prepended to the returned text)."""
    import torch

    with torch.inference_mode():
        return _generate(loaded, user, config or GenerationConfig(), prefill, system)


def _generate(loaded: LoadedModel, user: str, config: GenerationConfig, prefill: str, system: str) -> str:
    tok, model = loaded.tokenizer, loaded.model
    prompt = render_prompt(tok, user, system, prefill)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(loaded.device)
    if enc["input_ids"].shape[1] > config.max_prompt_tokens + 512:
        enc = {k: v[:, -(config.max_prompt_tokens + 512):] for k, v in enc.items()}
    out = model.generate(
        **enc, max_new_tokens=config.max_new_tokens, do_sample=False,
        repetition_penalty=config.repetition_penalty, pad_token_id=tok.pad_token_id or tok.eos_token_id,
    )
    reply = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return (prefill + reply).strip()


def label_logliks(loaded: LoadedModel, user: str, labels: list[str], system: str = SYSTEM) -> list[float]:
    """Sum of log-probabilities of each label as the assistant's reply to ``user`` (one padded forward pass)."""
    import torch

    with torch.inference_mode():
        return _label_logliks(loaded, user, labels, system)


def _label_logliks(loaded: LoadedModel, user: str, labels: list[str], system: str) -> list[float]:
    import torch

    tok, model = loaded.tokenizer, loaded.model
    prefix = tok(render_prompt(tok, user, system), add_special_tokens=False)["input_ids"]
    label_ids = [tok(label, add_special_tokens=False)["input_ids"] or [tok.eos_token_id] for label in labels]
    seqs = [prefix + ids for ids in label_ids]
    width = max(len(s) for s in seqs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=loaded.device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=loaded.device)
    logprobs = torch.log_softmax(model(input_ids=input_ids, attention_mask=mask).logits.float(), dim=-1)
    scores = []
    for row, ids in enumerate(label_ids):
        positions = range(len(prefix) - 1, len(prefix) - 1 + len(ids))
        scores.append(float(sum(logprobs[row, p, t] for p, t in zip(positions, ids, strict=True))))
    return scores
