"""torch.compile on the transformers decode path (issue #14, "lower the transformers path's overhead"): greedy
decoding of SmolLM2-135M in float32 with a static KV cache, eager against ``torch.compile(mode=
"max-autotune-no-cudagraphs")``, timed with the compile cache warm (``TORCHINDUCTOR_CACHE_DIR`` under the data dir:
the first run of this script fills it, and the compile seconds are printed apart from the decode timings).

The baseline is the app's own transformers path: ``model.generate`` eager with its default (dynamic) cache; the
compiled one runs ``model.generate`` with ``cache_implementation="static"`` (what a compiled graph needs), on the
same prompt and number of new tokens. They alternate; the ratio is the median of the per-pair ratios of seconds
per generate. The last line is ``ratio N``: compiled tokens/s over eager.

Run: .venv/bin/python bench/compile_decode.py [pairs=3] [new_tokens=48]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pipelines.config import AppConfig  # noqa: E402

os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(AppConfig.from_env().cache_dir / "inductor"))

import torch  # noqa: E402

from bench.timing import load_average, paired  # noqa: E402
from pipelines.context import AppContext  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle. " * 3


def main() -> None:
    args = [int(a) for a in sys.argv[1:] if a.isdigit()]
    pairs, new_tokens = (args + [3, 48][len(args):])[:2]
    ctx = AppContext.create()
    loaded = ctx.manager.load("smollm2-135m-instruct", "causal-lm", dtype="float32")
    model, tok = loaded.model, loaded.tokenizer
    ids = tok(PROMPT, return_tensors="pt")
    kwargs = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False,
              "pad_token_id": tok.eos_token_id}
    compiled = torch.compile(model.forward, mode="max-autotune-no-cudagraphs", dynamic=False)
    eager_forward = model.forward

    def run(forward) -> list[int]:
        model.forward = forward
        extra = {"cache_implementation": "static"} if forward is compiled else {}
        try:
            with torch.inference_mode():
                return model.generate(**ids, **kwargs, **extra)[0].tolist()
        finally:
            model.forward = eager_forward

    started = time.perf_counter()
    first = run(compiled)
    print(f"first compiled generate (compiling, cache {os.environ['TORCHINDUCTOR_CACHE_DIR']}): "
          f"{time.perf_counter() - started:.1f} s; {load_average()}")
    same = first == run(eager_forward)
    ours, ref, ratio = paired(lambda: run(compiled), lambda: run(eager_forward), pairs)
    print(f"prompt {ids['input_ids'].shape[1]} tokens, {new_tokens} new, float32, {torch.get_num_threads()} threads")
    print(f"eager, dynamic cache (the app's path): {new_tokens / ref:.2f} tok/s ({ref:.2f} s per generate, median)")
    print(f"compiled, static cache: {new_tokens / ours:.2f} tok/s ({ours:.2f} s per generate, median); "
          f"same tokens as eager: {same}")
    print(f"{load_average()}")
    print(f"ratio {1 / ratio:.2f}")


if __name__ == "__main__":
    main()
