"""Insight views: seconds for the logit lens and for integrated gradients against a bare forward pass.

- Logit lens on 128 tokens of SmolLM2-135M (31 rows: embeddings + 30 layers, each decoded through the final norm
  and the 49,152-word LM head), against SmolLM2's bare forward pass on the same 128 tokens.
- "Why this label?" with integrated gradients (32 steps in one batch, Captum's LayerIntegratedGradients) on 128
  tokens, embedding zero-shot with MiniLM-L6, against MiniLM's bare forward pass on the same tokens; and gradient x
  input for comparison.

- With ``--panel``: the click-a-token panel (top-10 alternatives + the step's attention + integrated gradients with
  up to 32 steps, batched, stopping early once complete within 5%) on a 128-token SmolLM2 context (float32), against
  the same bare forward pass; and its first look (alternatives + attention, shown before the attributions).

Medians over repeats after one warm-up call; the views and their bare forward pass are timed alternately and the
ratio is the median of the per-pair ratios (the shared machine's load hits both alike). The last line is
``ratio N``: N = logit-lens seconds over the bare SmolLM2 forward-pass seconds (128 tokens), i.e. how many forward
passes one logit lens costs.

With ``--models DIR`` the two models are the folders ``DIR/smollm2-135m-instruct`` and ``DIR/minilm-l6`` (the
random-weight copies ``bench/gpu_check.py --shapes DIR`` builds on a device machine without the embedded weights).
The floors printed first are the seconds the arithmetic alone needs at this machine's measured float32 peak.

Run: .venv/bin/python bench/insight.py [repeats] [--panel] [--panel-only] [--models DIR]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.timing import load_average, matmul_gflops, paired  # noqa: E402
from pipelines.context import AppContext  # noqa: E402
from pipelines.insight.attribution import make_explainer  # noqa: E402
from pipelines.insight.logit_lens import LensInput, LogitLensTask  # noqa: E402
from pipelines.tasks.classify import ClassifierSpec  # noqa: E402

TOKENS = 128
TEXT = ("The animal didn't cross the street because it was too tired, so it lay down by the old stone wall and "
        "slept until the sun went down over the hills. ") * 20


def layer_gflop(model, tokens: int) -> float:
    """GFLOP of one forward pass of the decoder layers on ``tokens`` tokens: their linear layers plus the attention
    products (the embeddings and the LM head not counted)."""
    import torch

    config = model.config
    layers = getattr(getattr(model, "model", model), "layers", [])
    linear = sum(m.weight.numel() for layer in layers for m in layer.modules() if isinstance(m, torch.nn.Linear))
    return (2 * tokens * linear + 4 * config.num_hidden_layers * tokens * tokens * config.hidden_size) / 1e9


def floors(model, tokens: int, peak: float) -> None:
    """The seconds the arithmetic alone needs at this CPU's measured float32 peak, for the two goals."""
    config = model.config
    lens = 2 * (config.num_hidden_layers + 1) * tokens * config.hidden_size * config.vocab_size / 1e9
    forward = layer_gflop(model, tokens)
    ig = 32 * 2 * forward  # each step: a forward and a backward to the inputs (no weight gradients), about as much
    print(f"float32 matmul peak on this CPU: {peak:.0f} GFLOP/s (best of 5, {load_average()})")
    print(f"arithmetic floor, logit lens: LM head over {config.num_hidden_layers + 1} rows x {tokens} positions = "
          f"{lens:.0f} GFLOP -> {lens / peak:.2f} s at that peak (goal 0.5 s)")
    print(f"arithmetic floor, panel: integrated gradients 32 steps x (forward {forward:.1f} GFLOP + backward to the "
          f"inputs) = {ig:.0f} GFLOP -> {ig / peak:.2f} s at that peak (goal 1.5 s for the whole panel)")


def bare_forward(loaded, tokens: int):
    ids = loaded.tokenizer(TEXT, return_tensors="pt", truncation=True, max_length=tokens)
    ids.pop("token_type_ids", None)
    ids = {k: v.to(loaded.model.device) for k, v in ids.items()}

    def run() -> None:
        with torch.inference_mode():
            loaded.model(**ids)

    return run


def cut_text(tokenizer, tokens: int) -> str:
    """A text of about ``tokens`` tokens (special tokens included)."""
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"][: tokens - 2]
    return tokenizer.decode(ids)


def main() -> None:
    models = Path(sys.argv[sys.argv.index("--models") + 1]).resolve() if "--models" in sys.argv else None
    args = [a for a in sys.argv[1:] if a.isdigit()]
    repeats = int(args[0]) if args else 3
    if models is not None:
        os.environ["LMW_MODEL_ROOTS"] = str(models)
    smol_ref, mini_ref = (str(models / n) if models else n for n in ("smollm2-135m-instruct", "minilm-l6"))
    ctx = AppContext.create()
    print(f"torch threads: {torch.get_num_threads()}, tokens: {TOKENS}, repeats: {repeats}")

    smol = ctx.manager.load(smol_ref, "causal-lm")
    floors(smol.model, TOKENS, matmul_gflops())
    lens_ratio = float("nan")
    if "--panel-only" not in sys.argv:
        lens = LogitLensTask(smol)
        print(load_average())
        lens_s, smol_s, lens_ratio = paired(lambda: lens(LensInput(TEXT, TOKENS)), bare_forward(smol, TOKENS), repeats)
        print(f"smollm2 bare forward ({TOKENS} tokens): {smol_s:.3f} s")
        print(f"logit lens ({TOKENS} tokens, {smol.model.config.num_hidden_layers + 1} rows): {lens_s:.3f} s "
              f"({lens_ratio:.1f}x forward, paired); {load_average()}")

        explainer = make_explainer(ctx.manager, ClassifierSpec("embeddings", mini_ref, "sports, cooking, finance"))
        text = cut_text(explainer.tokenizer, TOKENS)
        mini = bare_forward(explainer.loaded, TOKENS)
        ig_s, mini_s, ig_ratio = paired(lambda: explainer.explain(text, None, "integrated_gradients", 32), mini,
                                        repeats)
        gxi_s, _, gxi_ratio = paired(lambda: explainer.explain(text, None, "gradient_x_input"), mini, repeats)
        method = explainer.explain(text, None, "integrated_gradients", 32).described.method.render("en")
        print(f"minilm bare forward ({TOKENS} tokens): {mini_s:.3f} s")
        print(f"integrated gradients (up to 32 steps, batched; {method}): {ig_s:.3f} s ({ig_ratio:.1f}x forward, "
              f"paired)")
        print(f"gradient x input: {gxi_s:.3f} s ({gxi_ratio:.1f}x forward, paired); {load_average()}")
    if "--panel" in sys.argv or "--panel-only" in sys.argv:
        from pipelines.insight.token_inspect import TokenInspector

        inspector = TokenInspector(ctx)
        ids = smol.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
        prompt, answer = smol.tokenizer.decode(ids[:TOKENS - 8]), smol.tokenizer.decode(ids[TOKENS - 8:TOKENS])
        settings = {"mode": "completion", "precision": "float32"}
        args = (smol_ref, prompt, answer, 7, settings)
        first_s, ref_s, first_ratio = paired(lambda: inspector.first_look(*args), bare_forward(smol, TOKENS), repeats)
        print(f"panel first look (alternatives + attention, {TOKENS} tokens): {first_s:.3f} s "
              f"({first_ratio:.1f}x forward, paired); {load_average()}")
        results = []  # the first look loaded everything: no second warm-up
        panel_s, ref_s, panel_ratio = paired(lambda: results.append(inspector.inspect(*args)),
                                             bare_forward(smol, TOKENS), repeats, warm=False)
        result = results[-1]
        print(f"click-a-token panel ({TOKENS} tokens, IG up to 32 steps, {result.described.method.render('en')}): "
              f"{panel_s:.3f} s ({panel_ratio:.1f}x forward, paired); {load_average()}")
    print(f"ratio {lens_ratio:.1f}")


if __name__ == "__main__":
    main()
