"""Seconds to read a large upload with ``read_table`` against ``pandas.read_csv(dtype=str)`` on the same file.

Run: .venv/bin/python bench/read_table.py [megabytes]   (default 45: just under the 50 MB upload limit)
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.tables import read_table  # noqa: E402

WORDS = [
    "the", "movie", "was", "great", "terrible", "fine", "plot", "actors,", "music",
    '"quoted"', "很好", "糟糕", "très",
]


def make(path: Path, megabytes: float, encoding: str) -> int:
    rng = random.Random(0)
    rows, size = ["text,label,score"], 0
    while size < megabytes * 2**20:
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))).replace('"', '""')
        line = f'"{text}",{rng.choice(["pos", "neg", "neutral"])},{rng.random():.3f}'
        rows.append(line)
        size += len(line.encode(encoding)) + 1
    path.write_bytes(("\n".join(rows) + "\n").encode(encoding))
    return len(rows) - 1


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 45
    with tempfile.TemporaryDirectory() as folder:
        for encoding in ("utf-8", "gb18030"):
            path = Path(folder) / f"big-{encoding}.csv"
            rows = make(path, megabytes, encoding)
            ours = best_of(2, lambda p=path: read_table(p, max_rows=10**9))
            base = best_of(2, lambda p=path, e=encoding: pd.read_csv(p, dtype=str, keep_default_na=False, encoding=e))
            print(f"{encoding:8s} {path.stat().st_size / 2**20:5.1f} MB, {rows:,} rows: read_table {ours:5.2f} s, "
                  f"pandas.read_csv {base:5.2f} s, ratio {ours / base:.2f}x")


if __name__ == "__main__":
    main()
