"""Domain adaptation ("continue pre-training on domain text"): raw text in, a LoRA adapter that knows the domain out.

- Data: one text column, or a plain ``.txt``/``.md`` upload split into paragraphs (blank lines); each paragraph is
  an example (the train/validation split is by paragraph), and the tokenizer packs consecutive paragraphs into
  chunks of up to ``max_length`` tokens (a longer paragraph is cut into windows, never dropped).
- Objective: the causal-LM loss for a decoder (task ``domain``); the masked-LM loss for an encoder (task
  ``domain-mlm``: BERT's 15% masking, 80/10/10). An encoder without a masked-LM head (the embedded MiniLM is a
  sentence-embedding ``BertModel``) gets a fresh head whose decoder is tied to the input embeddings and whose
  transform starts as the identity; LoRA goes on the encoder alone, so the adapter loads on the plain encoder
  (the Attention tab's ``run:<id>``); the head is saved beside it (``mlm_head.safetensors``).
- Results: the loss (perplexity for a decoder, masked-token loss for an encoder) on the held-out domain
  paragraphs and on a general-English sample shipped in ``assets/examples/general_text.txt``, before and after.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.training.enums import TrainTask

if TYPE_CHECKING:
    from pipelines.tables import Table

TEXT_SUFFIXES = (".txt", ".md")
GENERAL_TEXT = Path(__file__).resolve().parents[2] / "assets" / "examples" / "general_text.txt"
BEFORE_FILE = "domain_before.json"
HEAD_FILE = "mlm_head.safetensors"
MAX_EVAL_CHUNKS = 64  # held-out chunks scored before and after (the validation split, capped)
MAX_PARAGRAPH_CHARS = 20_000
EVAL_SEED = 1234  # the masks of the scored chunks: the same before and after
IGNORE = -100
ENCODER_TYPES = frozenset({"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
                           "xlm-roberta", "mpnet", "camembert", "modernbert"})
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


# ---- which objective ------------------------------------------------------------------------------------------
def _config_of(base_model: str) -> dict[str, Any] | None:
    """The ``config.json`` of a base model given as an embedded name or a folder (None when unknown here)."""
    from pipelines.models.embedded import EMBEDDED

    embedded = EMBEDDED.get(base_model)
    if embedded is not None:
        return {"embedded_kind": embedded.default_kind}
    try:
        path = Path(base_model).expanduser()
        if (path / "config.json").is_file():
            return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return None


def is_encoder(config: dict[str, Any]) -> bool:
    """Whether a model config describes an encoder (trained with the masked-LM loss) rather than a decoder."""
    if "embedded_kind" in config:
        return config["embedded_kind"] == "encoder"
    archs = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith(CAUSAL_SUFFIXES) for a in archs) or config.get("is_decoder"):
        return False
    return any(a.endswith("ForMaskedLM") for a in archs) or str(config.get("model_type")) in ENCODER_TYPES


def domain_task(task: TrainTask, base_model: str) -> TrainTask:
    """``domain`` or ``domain-mlm`` for ``base_model`` (an encoder trains with the masked-LM loss); as asked when
    the base model's architecture is not known before loading it."""
    config = _config_of(base_model)
    if config is None:
        return task
    return TrainTask.DOMAIN_MLM if is_encoder(config) else TrainTask.DOMAIN


# ---- text into examples ------------------------------------------------------------------------------------------
def paragraphs(text: str) -> list[str]:
    """Paragraphs (separated by blank lines), whitespace-normalised; one over the length limit is cut at lines."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        block = re.sub(r"[ \t]+", " ", block.strip())
        while len(block) > MAX_PARAGRAPH_CHARS:
            cut = block.rfind("\n", 0, MAX_PARAGRAPH_CHARS)
            cut = cut if cut > 0 else MAX_PARAGRAPH_CHARS
            out.append(block[:cut].strip())
            block = block[cut:].strip()
        if block:
            out.append(block)
    return out


def domain_examples(column: Iterable[Any], dropped: Counter[str]) -> tuple[list[dict], list[str]]:
    """Examples ``{"text": paragraph}`` from a text column (a long cell is split into its paragraphs)."""
    texts: list[str] = []
    for cell in column:
        pieces = paragraphs(str(cell))
        if not pieces:
            dropped["empty_text"] += 1
        texts.extend(pieces)
    return [{"text": t} for t in texts], texts


def is_plain_text(path: str | None, task: str) -> bool:
    """Whether an upload is read as plain domain text (a ``.md`` file always; ``.txt`` for domain tasks)."""
    name = str(path or "").lower()
    return name.endswith(".md") or (name.endswith(".txt") and str(task).startswith(TrainTask.DOMAIN.value))


def read_plain_text(path: str, max_bytes: int, max_rows: int) -> Table:
    """A plain ``.txt``/``.md`` upload as a one-column table (``text``), one paragraph a row."""
    import pandas as pd

    from pipelines.errors import InputError
    from pipelines.table_sniff import check_not_binary, check_text, decode
    from pipelines.tables import Table
    from pipelines.uploads import checked_upload

    resolved = checked_upload(path, TEXT_SUFFIXES, max_bytes)
    raw = resolved.read_bytes()
    check_not_binary(raw)
    text, encoding = decode(raw)
    check_text(text)
    rows = paragraphs(text)[:max_rows]
    if not rows:
        raise InputError("tables.error.empty")
    return Table(frame=pd.DataFrame({"text": rows}).astype(str), encoding=encoding, delimiter=None, notes=[])


# ---- tokens -------------------------------------------------------------------------------------------------------
def pack(tokenizer: Any, examples: list[dict], max_length: int, mlm: bool) -> tuple[list[dict], int]:
    """Rows of up to ``max_length`` tokens: consecutive paragraphs packed together, a longer one cut into windows;
    and how many paragraphs were cut. Decoders: paragraphs end with EOS, ``labels`` are the ids. Encoders:
    ``[CLS] ... [SEP]`` around each chunk, ``labels`` still unmasked (see :func:`mask_rows`)."""
    if mlm:
        room = max_length - 2
        end = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else []
    else:
        room = max_length
        end = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    chunks: list[list[int]] = []
    current: list[int] = []
    cut = 0
    for example in examples:
        ids = list(tokenizer(example["text"], add_special_tokens=False)["input_ids"]) + ([] if mlm else end)
        if len(ids) > room:
            cut += 1
        if current and len(current) + len(ids) > room:
            chunks.append(current)
            current = []
        while len(ids) > room:
            chunks.append(ids[:room])
            ids = ids[room:]
        current = current + ids
    if current:
        chunks.append(current)
    rows = []
    for chunk in chunks:
        if mlm:
            ids = [tokenizer.cls_token_id, *chunk, *end] if tokenizer.cls_token_id is not None else [*chunk, *end]
            rows.append({"input_ids": ids, "labels": list(ids), "token_type_ids": [0] * len(ids)})
        else:
            rows.append({"input_ids": chunk, "labels": list(chunk)})
    return rows, cut


def mask_rows(rows: list[dict], tokenizer: Any, probability: float, seed: int) -> list[dict]:
    """BERT's masking, seeded: ``probability`` of the (non-special) tokens are predicted; of those 80% become
    ``[MASK]``, 10% a random token, 10% stay. Every row predicts at least one token."""
    rng = random.Random(seed)
    special = set(tokenizer.all_special_ids)
    vocab = len(tokenizer)
    out = []
    for row in rows:
        ids, labels = list(row["input_ids"]), [IGNORE] * len(row["input_ids"])
        candidates = [i for i, t in enumerate(ids) if t not in special]
        chosen = [i for i in candidates if rng.random() < probability]
        if not chosen and candidates:
            chosen = [rng.choice(candidates)]
        for i in chosen:
            labels[i] = ids[i]
            draw = rng.random()
            if draw < 0.8:
                ids[i] = tokenizer.mask_token_id
            elif draw < 0.9:
                ids[i] = rng.randrange(vocab)
        out.append({**row, "input_ids": ids, "labels": labels})
    return out


def encode_domain(tokenizer: Any, examples: list[dict], max_length: int, mlm: bool, probability: float,
                  seed: int) -> tuple[list[dict], int]:
    """Packed (and for an encoder, masked) rows of domain text; and how many paragraphs were cut."""
    rows, cut = pack(tokenizer, examples, max_length, mlm)
    return (mask_rows(rows, tokenizer, probability, seed) if mlm else rows), cut


def general_examples() -> list[dict]:
    """The shipped general-English sample, one example a paragraph (empty when the file is missing)."""
    try:
        return [{"text": p} for p in paragraphs(GENERAL_TEXT.read_text(encoding="utf-8"))]
    except OSError:
        return []


# ---- models ---------------------------------------------------------------------------------------------------------
def embedding_name(model: Any) -> str | None:
    """The module name (last part) of the model's input embeddings, for PEFT's ``modules_to_save``."""
    embeddings = model.get_input_embeddings()
    for name, module in model.named_modules():
        if module is embeddings:
            return name.rsplit(".", 1)[-1]
    return None


def masked_lm(location: str, kwargs: dict[str, Any], lora_for: Callable[[Any], Any]) -> Any:
    """An encoder with a masked-LM head and LoRA on the encoder alone (``lora_for(encoder)`` gives its
    ``LoraConfig``; see the module doc); the head trains fully."""
    import torch
    import transformers
    from peft import get_peft_model

    model, info = transformers.AutoModelForMaskedLM.from_pretrained(location, output_loading_info=True, **kwargs)
    missing = set(info.get("missing_keys") or [])
    with torch.no_grad():
        for name, module in model.named_modules():
            if f"{name}.weight" in missing and name.endswith("transform.dense") and \
                    module.weight.shape[0] == module.weight.shape[1]:
                module.weight.copy_(torch.eye(module.weight.shape[0]))  # a fresh head starts from the hidden states
                module.bias.zero_()
    prefix = model.base_model_prefix
    encoder = getattr(model, prefix)
    setattr(model, prefix, get_peft_model(encoder, lora_for(encoder)))
    return model


def is_masked(model: Any) -> bool:
    """Whether ``model`` is a :func:`masked_lm` composite (LoRA on its encoder, not around the whole model)."""
    from peft import PeftModel

    prefix = getattr(model, "base_model_prefix", "")
    return not isinstance(model, PeftModel) and isinstance(getattr(model, prefix, None), PeftModel)


def trainable_counts(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters, each shared tensor counted once."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def save_adapter(model: Any, folder: Path) -> None:
    """Save the LoRA adapter into ``folder`` (an encoder's: the adapter of the encoder, its head beside it)."""
    if not is_masked(model):
        model.save_pretrained(str(folder), safe_serialization=True)
        return
    from safetensors.torch import save_file

    prefix = model.base_model_prefix
    getattr(model, prefix).save_pretrained(str(folder), safe_serialization=True)
    head = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters()
            if p.requires_grad and not n.startswith(prefix + ".")}
    save_file(head, str(Path(folder).parent / HEAD_FILE))


# ---- before and after -----------------------------------------------------------------------------------------------
def chunk_loss(model: Any, tokenizer: Any, rows: list[dict], task: str, device: Any, batch_size: int = 8) -> float:
    """The token-weighted mean loss of ``model`` on ``rows`` (no gradients; the model's mode is restored)."""
    import torch

    from pipelines.training.tokenize import collate

    if not rows:
        return float("nan")
    was_training = model.training
    model.eval()
    total, weight = 0.0, 0
    shift = 0 if task == TrainTask.DOMAIN_MLM else 1
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = {k: v.to(device) for k, v in collate(tokenizer, rows[start:start + batch_size], task).items()}
            n = int((batch["labels"][:, shift:] != IGNORE).sum())
            total += float(model(**batch).loss) * n
            weight += n
    if was_training:
        model.train()
    return total / max(weight, 1)


def score(loss: float) -> dict[str, float]:
    """A loss and its exponential (perplexity; for masked tokens, the masked-token perplexity)."""
    return {"loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50.0)), 6)}


class DomainEval:
    """The held-out domain chunks and the general sample of one run, scored with any state of its model."""

    def __init__(self, trainer: Any) -> None:
        s = trainer.settings
        self.task, self.tokenizer, self.device = trainer.task, trainer.tokenizer, trainer.device
        mlm = self.task == TrainTask.DOMAIN_MLM
        self.held_out = trainer.val_rows[:MAX_EVAL_CHUNKS]
        self.general = encode_domain(self.tokenizer, general_examples(), s.max_length, mlm, s.mlm_probability,
                                     EVAL_SEED)[0][:MAX_EVAL_CHUNKS]

    def run(self, model: Any) -> dict[str, Any]:
        """``{"held_out": {"loss", "perplexity"}, "general": {...}}`` for ``model`` now."""
        return {name: score(chunk_loss(model, self.tokenizer, rows, self.task, self.device))
                for name, rows in (("held_out", self.held_out), ("general", self.general))}

    def record(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        """The run's ``metrics["domain"]``: the measure, row counts, before and after."""
        measure = "masked_loss" if self.task == TrainTask.DOMAIN_MLM else "perplexity"
        return {"measure": measure, "chunks": {"held_out": len(self.held_out), "general": len(self.general)},
                "before": before, "after": after}


def write_before(run_dir: Path, before: dict[str, Any]) -> None:
    (Path(run_dir) / BEFORE_FILE).write_text(json.dumps(before), encoding="utf-8")


def read_before(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / BEFORE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
