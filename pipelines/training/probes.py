"""Live probes: up to five prompts (causal LM) or texts (classifier) that the training child answers at every
evaluation, so the user watches the model learn.

- classifier: the label probabilities of each text (the answer is the most likely label);
- causal LM (instruction data: through the chat template as in training; raw text and domain runs: a plain
  continuation): a greedy generation of ``probe_tokens`` tokens;
- masked LM (domain adaptation of an encoder): the three most likely fillers of the first ``[MASK]`` (or ``___``)
  in the text, or of its last word when it has none.

The child emits one ``probes`` event per evaluation (``{"step", "answers": [{"probe", "answer", "probs"}]}``);
:func:`pipelines.training.progress.apply` collects them in ``JobState.probes``, and the finished run keeps the
same list in ``run.json``'s ``metrics["probes"]``. :func:`probe_rows` makes the table: one row per probe per
evaluation (newest evaluation first) with the previous evaluation's answer beside.
"""

from __future__ import annotations

from typing import Any

from pipelines.messages import render
from pipelines.training.enums import TrainTask

PROBE_COLUMNS = ("step", "probe", "answer", "previous")
TOP_FILLERS = 3
BLANK = "___"


def _classify(trainer: Any, model: Any, probes: list[str]) -> list[dict[str, Any]]:
    import torch

    enc = trainer.tokenizer(probes, truncation=True, max_length=trainer.settings.max_length, padding=True,
                            return_tensors="pt").to(trainer.device)
    probs = torch.softmax(model(**enc).logits.float(), dim=-1).tolist()
    labels = trainer.data.labels
    out = []
    for probe, row in zip(probes, probs, strict=True):
        shown = {label: round(p, 4) for label, p in zip(labels, row, strict=False)}
        out.append({"probe": probe, "answer": max(shown, key=shown.get), "probs": shown})
    return out


def _generate(trainer: Any, model: Any, probes: list[str]) -> list[dict[str, Any]]:
    import torch

    from pipelines.training.tokenize import prompt_response_ids

    tok = trainer.tokenizer
    chat = trainer.task == TrainTask.CAUSAL_LM and any("prompt" in e for e in trainer.data.examples[:1])
    out = []
    for probe in probes:
        ids = prompt_response_ids(tok, probe, None)[0] if chat else list(tok(probe)["input_ids"])
        tensor = torch.tensor([ids[-trainer.settings.max_length:]], device=trainer.device)
        generated = model.generate(input_ids=tensor, attention_mask=torch.ones_like(tensor),
                                   max_new_tokens=trainer.settings.probe_tokens, do_sample=False,
                                   pad_token_id=tok.pad_token_id)
        out.append({"probe": probe, "answer": tok.decode(generated[0, tensor.shape[1]:], skip_special_tokens=True)
                    .strip()})
    return out


def _fill(trainer: Any, model: Any, probes: list[str]) -> list[dict[str, Any]]:
    import torch

    tok = trainer.tokenizer
    out = []
    for probe in probes:
        text = probe.replace(BLANK, tok.mask_token)
        ids = list(tok(text, truncation=True, max_length=trainer.settings.max_length)["input_ids"])
        masked = [i for i, t in enumerate(ids) if t == tok.mask_token_id]
        if not masked:  # no blank: predict the last word
            words = [i for i, t in enumerate(ids) if t not in tok.all_special_ids]
            if not words:
                out.append({"probe": probe, "answer": ""})
                continue
            masked = [words[-1]]
            ids[masked[0]] = tok.mask_token_id
        logits = model(input_ids=torch.tensor([ids], device=trainer.device)).logits[0, masked[0]].float()
        top = torch.softmax(logits, dim=-1).topk(TOP_FILLERS)
        probs = {tok.decode([int(i)]).strip(): round(float(p), 4) for p, i in zip(top.values, top.indices,
                                                                                     strict=True)}
        out.append({"probe": probe, "answer": max(probs, key=probs.get) if probs else "", "probs": probs})
    return out


def answer_probes(trainer: Any, model: Any) -> list[dict[str, Any]]:
    """What ``model`` (the unwrapped training model) answers to the run's probes now; its mode is restored."""
    probes = list(trainer.settings.probes)
    if not probes:
        return []
    was_training = model.training
    model.eval()
    try:
        if trainer.task == TrainTask.CLASSIFICATION:
            return _classify(trainer, model, probes)
        if trainer.task == TrainTask.DOMAIN_MLM:
            return _fill(trainer, model, probes)
        return _generate(trainer, model, probes)
    finally:
        if was_training:
            model.train()


def answer_text(answer: dict[str, Any] | None) -> str:
    """One cell: the generation, or the probabilities (most likely first) as ``label 0.91 · other 0.09``."""
    if not answer:
        return ""
    probs = answer.get("probs")
    if probs:
        ranked = sorted(probs.items(), key=lambda item: -item[1])[:TOP_FILLERS]
        return " · ".join(f"{label} {p:.3g}" for label, p in ranked)
    return str(answer.get("answer", ""))


def probe_rows(history: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per probe per evaluation, the newest evaluation first: step, probe, answer, previous answer."""
    rows: list[list[Any]] = []
    previous: dict[str, dict] = {}
    for evaluation in history:
        current = []
        for answer in evaluation.get("answers", []):
            probe = str(answer.get("probe", ""))
            current.append([int(evaluation.get("step", 0)), probe, answer_text(answer),
                            answer_text(previous.get(probe))])
        previous = {str(a.get("probe", "")): a for a in evaluation.get("answers", [])}
        rows = current + rows
    return rows


def probe_headers(lang: str = "en") -> list[str]:
    return [render(f"probes.col.{name}", lang) for name in PROBE_COLUMNS]


def fold(history: list[dict[str, Any]], step: int, answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``history`` with the answers of the evaluation at ``step`` (a repeated step, after a resume, replaces)."""
    kept = [h for h in history if int(h.get("step", -1)) < step]
    return [*kept, {"step": step, "answers": answers}]


def run_history(run_dir: Any) -> list[dict[str, Any]]:
    """The probe answers of a run folder, from its event log (every evaluation, resumes included)."""
    from pathlib import Path

    from pipelines.training.progress import LOG_FILE, EventTail

    tail = EventTail(Path(run_dir) / LOG_FILE)
    history: list[dict[str, Any]] = []
    try:
        for record in tail.read():
            if record.get("event") == "probes":
                history = fold(history, int(record.get("step", 0)), list(record.get("answers") or []))
    finally:
        tail.close()
    return history


def report_blocks(metrics: dict[str, Any], lang: str = "en") -> list[Any]:
    """The run report's probe and domain-adaptation sections (``pipelines.evaluation.report_blocks`` blocks):
    the probe table and the held-out/general before-after table; empty for a run with neither."""
    from pipelines.evaluation.report_blocks import Heading, Para, Table
    from pipelines.training.view import DOMAIN_COLUMNS, domain_view

    blocks: list[Any] = []
    if metrics.get("domain"):
        text, rows = domain_view(metrics["domain"], lang)
        head = [render(f"probes.col.{c}", lang) for c in DOMAIN_COLUMNS]
        blocks += [Heading(render("probes.report_domain", lang)), Para(text),
                   Table([[str(c) for c in r] for r in rows], head)]
    if metrics.get("probes"):
        rows = probe_rows(metrics["probes"])
        blocks += [Heading(render("probes.table", lang)),
                   Table([[str(c) for c in r] for r in rows], probe_headers(lang))]
    return blocks
