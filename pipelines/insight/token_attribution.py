"""Attribution of one generated token's log-probability to the tokens before it (Captum on the input embeddings).

Integrated gradients run the steps of the path in batches and only the last position's logits are computed
(``logits_to_keep=1``: the LM head over the other positions is never needed). Captum's convergence delta is
checked against 5% of the output difference from the baseline (a note when it is missed). With ``early=True`` a
few steps are tried first and kept when already complete; it is off by default here because on SmolLM2 prompts
8 steps were never complete (0 of 3 measured, nor 32 on short prompts), so the first try only added 25% of work.
Gradient x input is one forward and backward pass.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from pipelines.attention.extract import unwrap_peft
from pipelines.insight.attribution import COMPLETE_WITHIN, AttributionMethod, step_plan
from pipelines.messages import Msg

STEP_BATCH = 16  # path points per forward/backward batch (memory: batch x tokens x layers of activations)


def keep_last(model: Any) -> dict[str, int]:
    """``{"logits_to_keep": 1}`` when the model's forward takes it (only the last position's logits), else {}."""
    try:
        return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    except (TypeError, ValueError):
        return {}


def attribute_token(loaded: Any, prefix: list[int], token_id: int, method: AttributionMethod,
                    steps: int, early: bool = False) -> tuple[np.ndarray, int, Msg | None]:
    """Per prefix token, the attribution of log p(token | prefix) (summed over the embedding dimensions); the
    steps used; a note when integrated gradients stay incomplete by more than 5%."""
    import torch
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

    inner = unwrap_peft(loaded.model)
    layer = inner.get_input_embeddings()
    device = next(inner.parameters()).device
    ids = torch.tensor([prefix], device=device)
    extra = keep_last(inner)

    def forward(input_ids: Any) -> Any:
        logits = inner(input_ids=input_ids, use_cache=False, **extra).logits[:, -1].float()
        return torch.log_softmax(logits, dim=-1)[:, token_id]

    with torch.enable_grad():
        if method is AttributionMethod.GRADIENT_X_INPUT:
            attr = LayerGradientXActivation(forward, layer).attribute(ids)
            return attr[0].sum(-1).detach().float().cpu().numpy(), 1, None
        tokenizer = loaded.tokenizer
        special = set(tokenizer.all_special_ids)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        baseline = torch.tensor([[i if i in special else pad for i in prefix]], device=device)
        with torch.inference_mode():
            ends = forward(torch.cat([ids, baseline]))
        gap = abs(float(ends[0] - ends[1]))
        explainer = LayerIntegratedGradients(forward, layer)
        for used in step_plan(steps) if early else (steps,):
            attr, delta = explainer.attribute(ids, baselines=baseline, n_steps=used,
                                              internal_batch_size=min(used, STEP_BATCH),
                                              return_convergence_delta=True)
            error = abs(float(delta.reshape(-1)[0]))
            if error <= COMPLETE_WITHIN * max(gap, 1e-6):
                break
    shown = f"{float(delta.reshape(-1)[0]):+.4f}"
    if error > COMPLETE_WITHIN * max(gap, 1e-6):
        note = Msg.of("insight.note.incomplete", delta=shown, steps=used)
    else:
        note = Msg.of("insight.note.ig_converged", used=used, asked=steps, delta=shown) if used < steps else None
    return attr[0].sum(-1).detach().float().cpu().numpy(), used, note
