"""Batch auto precision's speed-ups kept per CPU and model shape, side-by-side batches, and torch thread counts
that stay with the thread that set them."""

from __future__ import annotations

import threading
import time
import types

import pytest
import torch

from pipelines.models.torch_threads import set_thread_count, start_count
from pipelines.prepare import sample_texts
from pipelines.tasks import precision
from pipelines.tasks.classify import SequenceClassifierTask, fine_tuned_classifier
from pipelines.tasks.parallel import cpu_workers, map_batches
from pipelines.tasks.precision_memory import KEEP, MIN_PAIRS, SpeedMemory, shape_key

ROWS = [f"row {i}" for i in range(300)]
SHAPE = "bert|384|6|1536|12"


class Fake:
    """Answers "a" (or "b" for the rows in ``flips``); counts its rows; ``delay`` fake seconds per row."""

    labels, batch_size, window = ["a", "b"], 8, 512

    def __init__(self, clock: list[float], delay: float, flips: frozenset[int] = frozenset()) -> None:
        self.clock, self.delay, self.flips, self.rows = clock, delay, flips, 0

    def classify(self, texts: list[str]) -> list[dict]:
        self.clock[0] += self.delay * len(texts)
        self.rows += len(texts)
        return [{"label": "b" if int(t.split()[1]) in self.flips else "a", "scores": {}} for t in texts]


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [0.0]
    monkeypatch.setattr(precision, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    return now


def auto_with(memory: SpeedMemory, loaders: dict, exact: Fake) -> precision.AutoPrecision:
    auto = precision.AutoPrecision(exact, loaders, key=("fake", id(loaders)), store=precision.DecisionStore(),
                                   gate=lambda _name: True, memory=memory)
    auto.shape = SHAPE
    return auto


def test_memory_keeps_the_newest_pairs_and_ranks_only_known_faster_candidates(tmp_path) -> None:
    memory = SpeedMemory(tmp_path / "speed.json")
    assert memory.ranked(SHAPE, 1.15) == []  # nothing known: calibrate
    memory.add(SHAPE, {"int8": [2.0] * (MIN_PAIRS - 1), "bfloat16": [3.0] * MIN_PAIRS})
    assert memory.ranked(SHAPE, 1.15) == ["bfloat16"]  # int8 has too few pairs to be trusted yet
    memory.add(SHAPE, {"int8": [2.1], "bfloat16": [0.5] * MIN_PAIRS})
    assert memory.ranked(SHAPE, 1.15) == ["int8", "bfloat16"]  # fastest first: medians 2.0 and (3 + 0.5) / 2
    memory.add(SHAPE, {"bfloat16": [0.5] * KEEP})
    assert memory.pairs(SHAPE)["bfloat16"] == [0.5] * KEEP  # only the newest KEEP are kept
    assert memory.ranked(SHAPE, 1.15) == ["int8"] and memory.ranked("other|shape", 1.15) == []
    assert memory.ranked(SHAPE, 2.5) == []  # a higher margin than the kept median: calibrate again
    (tmp_path / "speed.json").write_text("{not json", encoding="utf-8")
    assert memory.ranked(SHAPE, 1.15) == [] and memory.pairs(SHAPE) == {}  # a broken file is only a lost memory


def test_a_known_shape_checks_only_agreement_on_the_fastest_known_candidate(tmp_path, clock) -> None:
    memory = SpeedMemory(tmp_path / "speed.json")
    memory.add(SHAPE, {"int8": [2.0, 2.2, 1.9, 2.1], "bfloat16": [0.8] * MIN_PAIRS})
    loaded: list[str] = []
    exact, fast = Fake(clock, 0.002), Fake(clock, 0.001)
    auto = auto_with(memory, {"bfloat16": lambda: loaded.append("bfloat16") or Fake(clock, 0.0001),
                              "int8": lambda: loaded.append("int8") or fast}, exact)
    results = auto.classify(ROWS)
    assert auto.chosen == "int8" and auto.decision.known and loaded == ["int8"]  # bfloat16 never loaded
    assert exact.rows == precision.CALIBRATION_ROWS  # float32 on the sample only, no warm-up, no timing chunks
    assert fast.rows == precision.CALIBRATION_ROWS + len(ROWS) - precision.CALIBRATION_ROWS  # sample, then the rest
    assert auto.decision.measured == {"int8": (1.0, 64, pytest.approx(2.05))}  # the kept median
    assert [r["label"] for r in results] == ["a"] * len(ROWS)
    assert str(auto.describe()) == ("Precision: int8, chosen automatically: same labels as float32 on 64 of 64 rows, "
                                    "2.0x faster (speed measured earlier on this CPU for this model size).")
    assert "本 CPU" in auto.describe().render("zh-CN")
    assert memory.pairs(SHAPE)["int8"] == [2.0, 2.2, 1.9, 2.1]  # checking agreement adds no timing


def test_a_known_candidate_that_flips_labels_is_passed_over(tmp_path, clock) -> None:
    memory = SpeedMemory(tmp_path / "speed.json")
    memory.add(SHAPE, {"bfloat16": [3.0] * MIN_PAIRS, "int8": [2.0] * MIN_PAIRS})
    sample = precision.calibration_rows([len(t) for t in ROWS])
    flipping = Fake(clock, 0.0005, flips=frozenset({int(ROWS[sample[5]].split()[1])}))
    auto = auto_with(memory, {"bfloat16": lambda: flipping, "int8": lambda: Fake(clock, 0.001)}, Fake(clock, 0.002))
    auto.classify(ROWS)
    assert auto.chosen == "int8" and auto.decision.measured["bfloat16"][:2] == (63 / 64, 64)
    auto = auto_with(memory, {"bfloat16": lambda: flipping, "int8": lambda: flipping}, Fake(clock, 0.002))
    auto.classify(ROWS)
    assert auto.chosen == "float32"  # neither agrees: float32, as without the memory


def test_an_unknown_shape_calibrates_and_its_pairs_are_kept_for_the_next_model(tmp_path, clock) -> None:
    memory = SpeedMemory(tmp_path / "speed.json")
    first = auto_with(memory, {"bfloat16": lambda: Fake(clock, 0.004), "int8": lambda: Fake(clock, 0.001)},
                      Fake(clock, 0.002))
    first.classify(ROWS)
    assert first.chosen == "int8" and not first.decision.known
    kept = memory.pairs(SHAPE)
    assert kept["int8"] == [2.0] * 4 and kept["bfloat16"] == [0.5]  # 4 chunks; bfloat16 dropped after one
    second = auto_with(memory, {"bfloat16": lambda: Fake(clock, 0.004), "int8": lambda: Fake(clock, 0.001)},
                       Fake(clock, 0.002))
    second.classify(ROWS)
    assert second.chosen == "int8" and second.decision.known


def test_measure_speed_times_every_chunk_whatever_the_labels(tmp_path, clock) -> None:
    """The install step times a model with an untrained head, whose near-tied labels flip under int8."""
    memory = SpeedMemory(tmp_path / "speed.json")
    flips = frozenset(range(0, 300, 3))
    auto = auto_with(memory, {"int8": lambda: Fake(clock, 0.001, flips=flips)}, Fake(clock, 0.002))
    auto.measure_speed(ROWS[:128])
    assert memory.pairs(SHAPE)["int8"] == [2.0] * 8 and memory.ranked(SHAPE, precision.MIN_SPEEDUP) == ["int8"]


def test_shape_key_names_what_the_speed_depends_on(ctx, tiny_root) -> None:
    task = fine_tuned_classifier(ctx.manager, str(tiny_root / "tiny-bert-cls"), "float32")
    config = task.model.config
    assert shape_key(task.model) == (f"bert|{config.hidden_size}|{config.num_hidden_layers}|"
                                     f"{config.intermediate_size}|{config.num_attention_heads}")
    lengths = sorted(len(t.split()) for t in sample_texts())
    assert lengths[0] == 5 and lengths[-1] == 160 and len(set(lengths)) > 100  # a spread of lengths


def test_batches_run_side_by_side_one_torch_thread_each_in_order() -> None:
    seen: list[tuple[str, int]] = []

    def square(x: int) -> int:
        time.sleep(0.01)  # later than the workers' start: their count must hold after the start count is restored
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return x * x

    before, start = torch.get_num_threads(), start_count()
    assert map_batches(square, list(range(20)), workers=2) == [x * x for x in range(20)]
    assert {name for name, _ in seen} == {"lmw-batch-0", "lmw-batch-1"} or len({n for n, _ in seen}) == 1
    assert {threads for _, threads in seen} == {1}  # also after the start count was put back
    assert torch.get_num_threads() == before and start_count() == start  # nothing leaked to other threads
    assert map_batches(square, [3], workers=2) == [9]  # one batch: run here
    assert cpu_workers("cuda") == 1 and cpu_workers("cpu") == max(1, torch.get_num_threads())

    def fail(x: int) -> int:
        if x == 5:
            raise ValueError("row 5")
        return x

    with pytest.raises(ValueError, match="row 5"):
        map_batches(fail, list(range(10)), workers=2)


def test_a_short_call_still_gives_every_worker_a_batch(ctx, tiny_root, monkeypatch) -> None:
    task = fine_tuned_classifier(ctx.manager, str(tiny_root / "tiny-bert-cls"), "float32")
    monkeypatch.setattr("pipelines.tasks.classify.cpu_workers", lambda _device: 2)
    seen: list[int] = []
    original = SequenceClassifierTask.forward
    monkeypatch.setattr(SequenceClassifierTask, "forward", lambda self, batch: seen.append(
        int(batch["input_ids"].shape[0])) or original(self, batch))
    texts = [f"text number {i} " * (1 + i % 4) for i in range(16)]
    together = task.classify(texts)
    assert sorted(seen) == [8, 8]  # two workers: two batches of 8, not one of 16 on one worker
    alone = [task.classify([t])[0] for t in texts]
    assert [r["label"] for r in together] == [r["label"] for r in alone]


def test_a_thread_count_set_for_one_thread_does_not_leak_into_new_threads() -> None:
    """Before: the generation tuner's one-thread choice became every later thread's count (a CSV after a chat
    ran on one core), because torch.set_num_threads also sets the count new threads start with."""
    start = start_count()
    seen: list[int] = []

    def decode_thread() -> None:
        set_thread_count(1)
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=decode_thread)
    thread.start()
    thread.join()
    assert seen == [1] and start_count() == start


def test_workers_only_pad_the_rows_the_calling_thread_tokenized(ctx, tiny_root, monkeypatch) -> None:
    """A fast tokenizer called from two threads with different padding settings can fail ("Already borrowed"):
    the texts are tokenized once in the calling thread, the workers only pad."""
    task = fine_tuned_classifier(ctx.manager, str(tiny_root / "tiny-bert-cls"), "float32")
    tokenizer_class = type(task.tokenizer)
    calls: list[str] = []
    original = tokenizer_class.__call__
    monkeypatch.setattr(tokenizer_class, "__call__", lambda self, *a, **k: calls.append(
        threading.current_thread().name) or original(self, *a, **k))
    monkeypatch.setattr("pipelines.tasks.parallel.cpu_workers", lambda _device: 2)
    texts = [f"text number {i} " * (1 + i % 6) for i in range(64)]
    results = task.classify(texts)
    assert calls == [threading.current_thread().name]  # one tokenizer call, here
    assert len(results) == 64 and all(r["label"] in task.labels for r in results)
