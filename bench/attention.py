"""Attention tab: seconds from request to every view ready, and the size of what the browser receives.

For MiniLM (encoder) and SmolLM2 (decoder) at 64, 256 and 512 tokens it times what the "Show attention" handler
does -- tokenize, eager forward with attentions, bertviz head + model view HTML, five plotly figures -- plus
the serialisation Gradio does on the way out (iframe srcdoc escaping, ``fig.to_json()``). The baseline, measured in
the same run, is the plain forward pass of the model as loaded for generation (default attention kernel, no
attentions returned, no task head). Medians over repeats after one warm-up call.

With ``--browser`` it also times Chromium (Debian's /usr/bin/chromium via Playwright) drawing the two bertviz
documents, since bertviz draws one SVG line per weight.

Run: .venv/bin/python bench/attention.py [repeats] [--browser]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.timing import median_seconds  # noqa: E402
from pipelines.attention import AttentionInput, BertvizOptions, Selection, build_views  # noqa: E402
from pipelines.attention.bertviz_html import iframe  # noqa: E402
from pipelines.attention.extract import backbone, load_for_attention  # noqa: E402
from pipelines.attention.task import AttentionTask  # noqa: E402
from pipelines.context import AppContext  # noqa: E402

MODELS = ("minilm-l6", "smollm2-135m-instruct")
LENGTHS = (64, 256, 512)
TEXT = "The animal didn't cross the street because it was too tired, so it lay down and slept. " * 80
SERVED = BertvizOptions.for_mode("served")


def baseline(ctx: AppContext, ref: str, tokens: int):
    """The generation model's plain forward pass on the same tokens."""
    loaded = ctx.manager.load(ref)
    module, _ = backbone(loaded.model)
    encoded = loaded.tokenizer(TEXT, return_tensors="pt", truncation=True, max_length=tokens)
    encoded.pop("token_type_ids", None)

    def run() -> None:
        with torch.inference_mode():
            module(**encoded)

    return run


def full_request(ctx: AppContext, ref: str, tokens: int, sizes: dict):
    """Everything the tab's handler and Gradio's output serialisation do for one click."""
    task = AttentionTask(load_for_attention(ctx.manager, ref))

    def run() -> None:
        result = task(AttentionInput(TEXT, max_tokens=tokens))
        views = build_views(result, Selection(layer=0, head=0, token=0))
        frames = [iframe(views.head_view), iframe(views.model_view)]
        plots = [fig.to_json() for fig in views.plots.as_tuple()]
        sizes.update(
            tokens=result.num_tokens,
            html=sum(len(f.encode()) for f in frames),
            plots=sum(len(p) for p in plots),
            notes=views.notes,
            docs=[views.head_view.document, views.model_view.document],
            result=result,
        )

    return run


def browser_seconds(documents: list[str]) -> float:
    """Seconds for Chromium to load and draw each bertviz document (summed), each in a fresh page."""
    from playwright.sync_api import sync_playwright

    total = 0.0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        for document in documents:
            page = browser.new_page()
            started = time.perf_counter()
            page.set_content(document, wait_until="load")
            page.wait_for_function("document.querySelectorAll('svg line').length > 0", timeout=300_000)
            page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            total += time.perf_counter() - started
            page.close()
        browser.close()
    return total


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repeats = int(args[0]) if args else 3
    with_browser = "--browser" in sys.argv
    ctx = AppContext.create()
    print(f"torch threads: {torch.get_num_threads()}, repeats: {repeats} (median after a warm-up)")
    header = (
        f"{'model':<22}{'tokens':>7}{'forward s':>11}{'all views s':>13}{'ratio':>8}"
        f"{'HTML inline':>13}{'HTML served':>13}{'plots JSON':>12}" + (f"{'bertviz draw':>13}" if with_browser else "")
    )
    print(header)
    for ref in MODELS:
        for tokens in LENGTHS:
            sizes: dict = {}
            base = median_seconds(baseline(ctx, ref, tokens), repeats)
            full = median_seconds(full_request(ctx, ref, tokens, sizes), repeats)
            result = sizes["result"]
            served = build_views(result, Selection(), SERVED)
            served_html = sum(len(iframe(v).encode()) for v in (served.head_view, served.model_view))
            drawn = f"{browser_seconds(sizes['docs']):>11.2f}s" if with_browser else ""
            print(
                f"{ref:<22}{sizes['tokens']:>7}{base:>11.3f}{full:>13.3f}{full / base:>7.1f}x"
                f"{sizes['html'] / 2**20:>11.2f}MB{served_html / 2**20:>11.2f}MB{sizes['plots'] / 2**20:>10.2f}MB"
                f"{drawn}"
            )
            for note in sizes["notes"]:
                print(f"{'':<29}{note.render()}")
    print("goal: all views under 1 s for 256 tokens on CPU")


if __name__ == "__main__":
    main()
