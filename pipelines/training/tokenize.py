"""Turn prepared examples into token ids, and rows into padded batches.

Instruction tuning uses the tokenizer's chat template: the prompt (up to the assistant turn's start) gets
label -100 so the loss is on the response tokens only. Without a template, ``prompt\\n`` + response + EOS.
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE = -100


def encode_classification(tokenizer: Any, examples: list[dict], max_length: int) -> tuple[list[dict], int]:
    """Rows of ``input_ids``/``attention_mask`` (+ ``token_type_ids``) and ``labels``; and the truncated count."""
    enc = tokenizer([e["text"] for e in examples], truncation=True, max_length=max_length)
    full = tokenizer([e["text"] for e in examples], truncation=False)["input_ids"]
    rows = []
    for i, example in enumerate(examples):
        row = {k: enc[k][i] for k in enc if k in ("input_ids", "attention_mask", "token_type_ids")}
        row["labels"] = example["label"]
        rows.append(row)
    truncated = sum(len(ids) > max_length for ids in full)
    return rows, truncated


def _has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _ids(tokenizer: Any, text: str, special: bool = False) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def text_prompt(text: str) -> str:
    """For single-column text data: the first third of the words (3 to 12) serve as a prompt."""
    words = text.split()
    return " ".join(words[: max(3, min(12, len(words) // 3))])


def prompt_response_ids(tokenizer: Any, prompt: str, response: str | None) -> tuple[list[int], list[int]]:
    """Token ids of the prompt part and of the response part (empty when ``response`` is None)."""
    if _has_template(tokenizer):
        user = [{"role": "user", "content": prompt}]
        prompt_text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        if response is None:
            return _ids(tokenizer, prompt_text), []
        full = tokenizer.apply_chat_template(
            [*user, {"role": "assistant", "content": response}], tokenize=False
        )
        if full.startswith(prompt_text):
            return _ids(tokenizer, prompt_text), _ids(tokenizer, full[len(prompt_text):])
    prompt_ids = _ids(tokenizer, prompt + "\n", special=True)
    if response is None:
        return prompt_ids, []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return prompt_ids, _ids(tokenizer, response) + eos


def encode_lm(tokenizer: Any, examples: list[dict], max_length: int) -> tuple[list[dict], int]:
    """Rows of ``input_ids`` and ``labels`` (prompt tokens masked); and how many rows were truncated."""
    rows, truncated = [], 0
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for example in examples:
        if "prompt" in example:
            p_ids, r_ids = prompt_response_ids(tokenizer, example["prompt"], example["response"])
            if len(p_ids) + len(r_ids) > max_length:
                truncated += 1
                r_ids = r_ids[: max_length - min(len(p_ids), max_length // 2)]
                p_ids = p_ids[len(p_ids) - (max_length - len(r_ids)):]
            ids, labels = p_ids + r_ids, [IGNORE] * len(p_ids) + r_ids
        else:
            ids = _ids(tokenizer, example["text"], special=True) + eos
            if len(ids) > max_length:
                truncated += 1
                ids = ids[:max_length]
            labels = list(ids)
        rows.append({"input_ids": ids, "labels": labels})
    return rows, truncated


def generation_prompt(tokenizer: Any, example: dict) -> list[int]:
    """Prompt ids for a before/after generation, built exactly as during training."""
    if "prompt" in example:
        return prompt_response_ids(tokenizer, example["prompt"], None)[0]
    return _ids(tokenizer, text_prompt(example["text"]), special=True)


def length_grouped_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of rows of similar length (like transformers' ``group_by_length``): a random
    permutation is cut into mega-batches of up to 50 batches, each sorted by length and cut into batches, and the
    batches are shuffled. Padding to the longest row of a batch then wastes little compute."""
    n = len(lengths)
    mult = max(1, min(n // (batch_size * 4), 50))
    order = torch.randperm(n, generator=generator).tolist()
    batches = []
    for start in range(0, n, mult * batch_size):
        mega = sorted(order[start:start + mult * batch_size], key=lambda i: lengths[i], reverse=True)
        batches.extend(mega[i:i + batch_size] for i in range(0, len(mega), batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def collate(tokenizer: Any, rows: list[dict], task: str) -> dict[str, torch.Tensor]:
    """Right-pad a list of rows to the longest one (dynamic padding) into tensors."""
    width = max(len(r["input_ids"]) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    types = torch.zeros((len(rows), width), dtype=torch.long) if "token_type_ids" in rows[0] else None
    labels = None if task == "classification" else torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        input_ids[i, :n] = torch.tensor(row["input_ids"])
        mask[i, :n] = 1
        if types is not None:
            types[i, :n] = torch.tensor(row["token_type_ids"])
        if labels is not None:
            labels[i, :n] = torch.tensor(row["labels"])
    batch = {"input_ids": input_ids, "attention_mask": mask}
    if types is not None:
        batch["token_type_ids"] = types
    batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.long) if labels is None else labels
    return batch
