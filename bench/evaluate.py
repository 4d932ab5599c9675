"""Rows/s of the Evaluate tab's generation evaluation against a per-row ``transformers.pipeline`` loop.

500 (prompt, reference) rows are evaluated for two causal LMs with ROUGE-1/2/L and the reference's perplexity
under each model, by:

  (a) the baseline: per row and per model, ``transformers.pipeline("text-generation")`` for the greedy reply, one
      forward pass for the reference's log-likelihood, and a fresh ``rouge_score`` scorer per row;
  (b) the app: :class:`pipelines.evaluation.job.EvaluationJob` (length-sorted left-padded batched generation,
      batched teacher forcing) and :func:`pipelines.evaluation.scoring.score` (one scorer per run; no bootstrap,
      ``--resamples 0``, so both do the same work).

Both run in the same process on the same prompts; the metric values must agree (ROUGE equal to the report's 4
decimals when the replies are identical, perplexity within 1e-4 relative: batched float32 sums differ in the last
bits). By default the two models are tiny random LMs built like
the tests' (``tests/tiny_models.py``), so the bench runs on a busy CPU; ``--models`` takes any two references.
Run: .venv/bin/python bench/evaluate.py [--rows 500] [--new-tokens 16] [--models a,b]. Ends with ``ratio N``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.config import AppConfig  # noqa: E402
from pipelines.context import AppContext  # noqa: E402
from pipelines.evaluation.job import EvaluationJob  # noqa: E402
from pipelines.evaluation.predictors import make_predictor  # noqa: E402
from pipelines.evaluation.scoring import score  # noqa: E402
from pipelines.evaluation.spec import EvalData, EvalOptions, EvalTask  # noqa: E402
from pipelines.tasks.lm_prompting import render_prompt  # noqa: E402

WORDS = ("the cat dog river city market sells fresh bread morning train leaves early quiet garden green "
         "light music plays softly children laugh window open summer rain falls")
ROUGE = ("rouge1", "rouge2", "rougeL")


def make_rows(count: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng, words = random.Random(seed), WORDS.split()
    prompts = [f"Summarise: {' '.join(rng.choices(words, k=rng.randint(5, 40)))}" for _ in range(count)]
    refs = [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(count)]
    return prompts, refs


def baseline(ctx: AppContext, model: str, prompts: list[str], refs: list[str], new_tokens: int) -> dict:
    """Per row: pipeline generation, one forward for the reference NLL, a fresh ROUGE scorer."""
    import torch
    import transformers
    from rouge_score import rouge_scorer

    loaded = ctx.manager.load(model, "causal-lm", dtype="float32")
    tok, lm = loaded.tokenizer, loaded.model
    pipe = transformers.pipeline("text-generation", model=lm, tokenizer=tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rouge = {name: 0.0 for name in ROUGE}
    nll, tokens, replies = 0.0, 0, []
    for prompt, ref in zip(prompts, refs, strict=True):
        text = render_prompt(tok, prompt)
        out = pipe(text, max_new_tokens=new_tokens, do_sample=False, return_full_text=False, pad_token_id=pad)
        reply = out[0]["generated_text"].strip()
        replies.append(reply)
        head = tok(text, add_special_tokens=False)["input_ids"]
        ids = head + tok(ref, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = lm(torch.tensor([ids])).logits[0].float()
        logp = torch.log_softmax(logits[:-1], dim=-1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
        nll -= float(logp[len(head) - 1:].sum())
        tokens += len(ids) - len(head)
        scores = rouge_scorer.RougeScorer(list(ROUGE), use_stemmer=True).score(ref, reply)
        for name in ROUGE:
            rouge[name] += scores[name].fmeasure / len(prompts)
    return {**rouge, "reference_perplexity": math.exp(nll / tokens), "replies": replies}


def app(ctx: AppContext, models: list[str], prompts: list[str], refs: list[str], new_tokens: int) -> dict:
    options = EvalOptions(max_rows=len(prompts), max_new_tokens=new_tokens, resamples=0, batch_size=8)
    data = EvalData(EvalTask.GENERATION, "prompt", "reference", prompts, refs, list(range(2, len(prompts) + 2)))
    job = EvaluationJob(data, models, lambda ref: make_predictor(ctx.manager, ref, data, options))
    job.run()
    if job.error:
        raise SystemExit(f"evaluation failed: {job.error}")
    report = score(data, models, job.results, options)
    return {m: {**{k: v["value"] for k, v in report["metrics"][m].items()},
                "replies": [r["prediction"] for r in job.results[i]]} for i, m in enumerate(models)}


def tiny_models(cache_dir: Path) -> tuple[list[str], Path]:
    from tests import tiny_models as tiny

    root = Path(tempfile.mkdtemp(prefix="lmw-bench-eval-"))
    return [str(tiny.build(kind, root / f"tiny-{kind}", cache_dir)) for kind in ("llama", "gpt2")], root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--models", default="", help="two comma-separated model references (default: tiny LMs)")
    args = parser.parse_args()
    config = AppConfig.from_env()
    if args.models:
        models, roots = [m.strip() for m in args.models.split(",")], []
    else:
        models, root = tiny_models(config.cache_dir)
        roots = [root]
    ctx = AppContext.create(AppConfig(data_dir=Path(tempfile.mkdtemp()) / "data", cache_dir=config.cache_dir,
                                      extra_model_roots=roots))
    for m in models:
        ctx.manager.load(m, "causal-lm", dtype="float32")  # loading is not timed
    prompts, refs = make_rows(args.rows)
    started = time.perf_counter()
    base = {m: baseline(ctx, m, prompts, refs, args.new_tokens) for m in models}
    base_s = time.perf_counter() - started
    started = time.perf_counter()
    ours = app(ctx, models, prompts, refs, args.new_tokens)
    app_s = time.perf_counter() - started
    for m in models:
        same = sum(a == b for a, b in zip(base[m]["replies"], ours[m]["replies"], strict=True))
        print(f"{m}: identical replies {same}/{args.rows}")
        for name in (*ROUGE, "reference_perplexity"):
            print(f"  {name}: baseline {base[m][name]:.6f}  app {ours[m][name]:.6f}")
        ppl_a, ppl_b = base[m]["reference_perplexity"], ours[m]["reference_perplexity"]
        assert abs(ppl_a - ppl_b) <= 1e-4 * ppl_a + 1e-4, "reference perplexity differs"
        if same == args.rows:  # the app's report keeps 4 decimals
            assert all(round(base[m][n], 4) == ours[m][n] for n in ROUGE), "ROUGE differs"
    base_rate, app_rate = args.rows / base_s, args.rows / app_s
    print(f"baseline {base_rate:.2f} rows/s ({base_s:.1f} s), app {app_rate:.2f} rows/s ({app_s:.1f} s)")
    print(f"ratio {app_rate / base_rate:.2f}")


if __name__ == "__main__":
    main()
