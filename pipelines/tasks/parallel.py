"""Mini-batches run side by side on a CPU: each worker thread runs whole batches on one torch thread.

The texts are tokenized once, in the calling thread, and each worker only pads its rows (``tokenizer.pad``, plain
Python): a fast tokenizer called from two threads with different padding settings can fail with "Already
borrowed" (its Rust state is changed while the other thread encodes).

A small encoder's batch (MiniLM: 16 rows of ~100 tokens) is made of many short operators; splitting each one over
every core costs a barrier per operator. Giving each core its own batch instead measured faster on a 2-core EPYC
(``bench/batch.py``): int8 dynamic quantisation 1.15-1.25x, float32 1.04x, bfloat16 1.05x, same labels. The
results are the same numbers up to float rounding: only the thread count of each matrix product changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pipelines.models.torch_threads import set_start_count, start_count

B = TypeVar("B")
R = TypeVar("R")


def cpu_workers(device: str) -> int:
    """Batches to run at once: the calling thread's torch thread count on a CPU, one on a GPU."""
    if device != "cpu":
        return 1
    import torch

    return max(1, torch.get_num_threads())


def map_batches(fn: Callable[[B], R], batches: Sequence[B], workers: int) -> list[R]:
    """``[fn(b) for b in batches]``; with ``workers`` > 1, in that many threads of one torch thread each.

    Each worker takes the next batch when it is free, so long and short batches even out. The first error of any
    batch is raised here, as in the plain loop (the other workers stop after their current batch).
    """
    if workers <= 1 or len(batches) < 2:
        return [fn(batch) for batch in batches]
    import torch

    results: list[R | None] = [None] * len(batches)
    errors: list[BaseException] = []
    pending = iter(range(len(batches)))
    lock, ready = threading.Lock(), threading.Semaphore(0)

    def work() -> None:
        torch.get_num_threads()  # the first torch call reads the start count; then this worker's own team:
        torch.set_num_threads(1)  # one thread (the start count is put back below once every worker has set its own)
        ready.release()
        while not errors:
            with lock:
                index = next(pending, None)
            if index is None:
                return
            try:
                results[index] = fn(batches[index])
            except BaseException as error:  # noqa: BLE001 - raised again in the calling thread
                errors.append(error)

    start = start_count()
    threads = [threading.Thread(target=work, name=f"lmw-batch-{n}", daemon=True)
               for n in range(min(workers, len(batches)))]
    for thread in threads:
        thread.start()
    for _ in threads:
        ready.acquire()
    set_start_count(start)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]


def run_encoded(task: Any, encoded: Any, batches: Sequence[list[int]], pad_to_multiple_of: int | None = None) -> list:
    """``task``'s outputs for each batch of row indices of ``encoded`` (one tokenizer call's unpadded lists): each
    batch padded, moved to the task's device and run by ``task.forward`` (no gradients) then ``task.postprocess``,
    the batches side by side on a CPU."""
    import torch

    keys = list(encoded.keys())

    def run(rows: list[int]) -> Any:
        features = {key: [encoded[key][i] for i in rows] for key in keys}
        batch = task.tokenizer.pad(features, padding=True, pad_to_multiple_of=pad_to_multiple_of,
                                   return_tensors="pt").to(task.loaded.device)
        with torch.inference_mode():
            outputs = task.forward(batch)
        return task.postprocess(outputs)

    return map_batches(run, batches, cpu_workers(task.loaded.device))
