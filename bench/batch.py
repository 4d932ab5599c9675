"""Rows/s of the CSV batch path (mini-batches in the worker) against one row at a time, in the same run.

Zero-shot classification by MiniLM embeddings and extractive summarisation on a ~200-row CSV.
Run: .venv/bin/python bench/batch.py [--rows 200]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.context import AppContext  # noqa: E402
from pipelines.tables import read_table  # noqa: E402
from pipelines.tasks.batch import BatchJob  # noqa: E402
from pipelines.tasks.classify import ClassifierSpec, make_classifier  # noqa: E402
from pipelines.tasks.embeddings import get_encoder  # noqa: E402
from pipelines.tasks.summarize import ExtractiveConfig, ExtractiveSummarizer  # noqa: E402

TOPICS = {
    "sports": ["The team won the match", "The striker scored a late goal", "Fans cheered in the stadium",
               "The coach praised the defence", "The league title is still open"],
    "cooking": ["Simmer the sauce slowly", "Add garlic and fresh basil", "Bake the bread for forty minutes",
                "Season the soup with pepper", "Knead the dough until smooth"],
    "finance": ["Shares rose after earnings", "The central bank raised rates", "Bond yields climbed again",
                "Investors sold technology stocks", "The currency weakened against the dollar"],
}


def make_csv(rows: int, folder: Path) -> Path:
    rng = random.Random(0)
    records = []
    for _ in range(rows):
        label = rng.choice(list(TOPICS))
        sentences = rng.sample(TOPICS[label], 4) + [rng.choice(TOPICS[rng.choice(list(TOPICS))])]
        records.append({"text": ". ".join(sentences) + ".", "label": label})
    path = folder / "bench.csv"
    pd.DataFrame(records).to_csv(path, index=False)
    return path


def rows_per_second(texts: list[str], process, batch_size: int) -> float:
    job = BatchJob(texts, process, batch_size)
    job.run()
    assert job.done == len(texts) and not job.error, job.error
    return job.done / (job.ended - job.started)


def naive(texts: list[str], one) -> float:
    started = time.perf_counter()
    for text in texts:
        one(text)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()
    ctx = AppContext.create()
    with tempfile.TemporaryDirectory() as tmp:
        texts = read_table(make_csv(args.rows, Path(tmp))).frame["text"].tolist()
    classifier = make_classifier(ctx.manager, ClassifierSpec("embeddings", "minilm-l6", "sports, cooking, finance"))
    summarizer = ExtractiveSummarizer(get_encoder(ctx.manager), ExtractiveConfig(count=2))
    classifier.classify(texts[:4])  # warm-up
    summarizer.summarize_many(texts[:4])

    print(f"{len(texts)} rows, torch threads: {__import__('torch').get_num_threads()}")
    for name, batched, one, size in (
        ("zero-shot classify (MiniLM)", classifier.classify, lambda x: classifier.classify([x]), 32),
        ("extractive summarise (MiniLM)", summarizer.summarize_many, summarizer.summarize, 16),
    ):
        base = naive(texts, one)
        fast = rows_per_second(texts, batched, size)
        print(f"{name:32s} one-at-a-time {base:7.1f} rows/s | batch of {size:2d} {fast:7.1f} rows/s "
              f"| ratio {fast / base:.2f}x")


if __name__ == "__main__":
    main()
