"""Fine-tuning: the app's launched training child against a default ``transformers.Trainer`` + PEFT script.

Classification (default): MiniLM-L6 (``minilm-l6``) on a synthetic CSV of 600 rows whose texts have 5 to 120
words (label rule: the text holds words of one topic, sports or cooking, among neutral filler words), max_length
128, LoRA r=8/alpha=16/dropout 0.05 on query/value, batch 16, lr 2e-3, 1 epoch, seed 0, no warm-up, no weight
decay, the same stratified 80/20 train/validation split (``pipelines.training.data.split``) on both sides.

* ours: a run started exactly as the app starts it: ``TrainingJob`` writes the run folder and launches
  ``python -m torch.distributed.run ... -m pipelines.training.child`` (accelerate inside; dynamic padding to the
  longest row of each batch, length-grouped shuffled batches); throughput is the child's own measure (optimizer
  steps only), the launch overhead is printed apart (seconds from Start to the first logged step);
* reference: a default Trainer script: the tokenizer pads every row to max_length (``padding="max_length"``),
  ``TrainingArguments`` defaults (linear schedule, AdamW, grad-norm 1.0) with the same lr/batch/epochs/seed.

Training samples/s = rows trained / seconds spent training (evaluation excluded on both sides: ours times its
optimizer steps, the reference runs ``Trainer.train()`` with evaluation off and is evaluated afterwards). Both
start from the same seed (same classifier-head initialisation). The machine may be shared, so the two trainers
alternate round by round and the best round of each is compared; every round is printed with the load average.
Goal: ratio >= 1.5 at equal or better validation accuracy.

``lm`` (optional): SmolLM2-135M-Instruct instruction tuning, tokens/s (non-padding tokens trained per second) of
ours against a Trainer script that pads to max_length, same LoRA on q_proj/v_proj.

Measured before the launched child (2 shared CPU cores, load 1.1-1.8, in-process trainer, ``2 both``):
classification 43.1 vs 23.0 samples/s = 1.87x at validation accuracy 1.000 both; SmolLM2 259 vs 202 tokens/s =
1.28x. Where the gain comes from: the length-grouped dynamic batches hold 1.73x fewer token positions than
max_length padding on the training split.

Measured with the launched child (2026-11-30, the same 2 cores shared by six engineers' test runs, load 11-14,
``bench/finetune.py 1 cls``): ours 1.3 samples/s (372.6 s) vs reference 1.4 samples/s (344.8 s) = 0.93x, both
validation accuracy 1.000; launch overhead (Start to first step) 179.2 s. At that load both sides ran ~30x slower
than at load 1-2 and the ratio is noise (as the 1.18x under load 5-7 was before); the overhead includes the
interpreter and imports, MiniLM loading, the before-training evaluation hook (zero-shot base and the logistic
regression baseline) and the step-0 evaluation. Same session, 1 vs 2 CPU processes: 4.4 samples/s (launch
107.5 s) vs 20.8 samples/s (launch 31.5 s) while the load fell from ~14 to ~9 between the two runs: the 4.69x is
the load changing, not DDP on 2 cores. Re-measure on an idle machine before quoting any of these ratios.

Also printed: the launch overhead (Start to first step: interpreter, imports, model load, LoRA wrap, the step-0
evaluation and one step), and samples/s with 2 CPU processes (gloo DDP, the same global batch) against 1. On a
2-core machine 2 processes share the same cores, so they are not expected to be faster; the figure is printed
as measured. The last line is ``ratio N`` (ours / reference, classification).

Run: .venv/bin/python bench/finetune.py [rounds=2] [cls|lm|both]
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from pipelines.config import AppConfig  # noqa: E402
from pipelines.tables import Table  # noqa: E402
from pipelines.training.data import ColumnMapping, PreparedData, prepare, split  # noqa: E402
from pipelines.training.hardware import HardwareSettings  # noqa: E402
from pipelines.training.job import TrainingJob, base_location  # noqa: E402
from pipelines.training.progress import LOG_FILE  # noqa: E402
from pipelines.training.settings import TrainSettings  # noqa: E402
from pipelines.training.slots import DeviceSlots  # noqa: E402
from pipelines.training.tokenize import IGNORE, encode_lm  # noqa: E402

FILLER_TEXT = ("the a of and to in that it was for on with as at by this from they we say her she or an will my one "
          "all would there their what so up out if about who get which go me when make can like time no just him know "
          "take people into year your good some could them see other than then now look only come its over think "
          "also back after use two how our work first well way even new want because any these give day most")
FILLER = FILLER_TEXT.split()
TOPIC_TEXT = {
    "sports": "goal match team coach player score league stadium referee tournament striker season",
    "cooking": "recipe oven flour butter sauce garlic simmer onion kitchen bake pepper dough",
}
TOPICS = {name: words.split() for name, words in TOPIC_TEXT.items()}
ROWS, EPOCHS, SEED = 600, 1, 0


def synthetic_csv(path: Path, rows: int = ROWS, seed: int = SEED) -> None:
    """Texts of 5 to 120 words; two topic words of the row's label hidden among the filler words."""
    rng = random.Random(seed)
    records = []
    for i in range(rows):
        label = "sports" if i % 2 else "cooking"
        words = [rng.choice(FILLER) for _ in range(rng.randint(5, 120))]
        for _ in range(2):
            words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[label]))
        records.append({"text": " ".join(words), "label": label})
    pd.DataFrame(records).to_csv(path, index=False)


def settings_for(task: str) -> TrainSettings:
    common = {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "epochs": EPOCHS, "seed": SEED, "patience": 0,
              "warmup_ratio": 0.0, "weight_decay": 0.0, "val_split": 0.2, "eval_every": 1_000_000, "sample_tokens": 1}
    if task == "classification":
        return TrainSettings.from_dict({**common, "batch_size": 16, "max_length": 128, "learning_rate": 2e-3,
                                        "target_modules": ["query", "value"]})
    return TrainSettings.from_dict({**common, "epochs": 1, "batch_size": 4, "max_length": 128,
                                    "learning_rate": 5e-4, "target_modules": ["q_proj", "v_proj"]})


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


# ---- ours ----------------------------------------------------------------------------------------------------
def run_ours(data: PreparedData, s: TrainSettings, location: str, processes: int = 1) -> dict:
    """One run through the app's launcher (a child process per rank), like the Fine-tune tab's Start."""

    with tempfile.TemporaryDirectory() as folder:
        config = AppConfig(data_dir=Path(folder), cache_dir=AppConfig.from_env().cache_dir,
                           extra_model_roots=[Path(location).parent])
        job = TrainingJob(config, DeviceSlots(), data, s, location, name="bench",
                          num_threads=max(1, (os.cpu_count() or 1) // processes),
                          hardware=HardwareSettings(device="cpu", processes=processes))
        started = time.time()
        job.start()
        job.wait()
        state = job.snapshot()
        if state.status != "complete":
            raise SystemExit(f"our run failed: {state.error}\n{state.log_text()}")
        log = (config.runs_dir / job.run_id / LOG_FILE).read_text(encoding="utf-8").splitlines()
        first_step = next(json.loads(line)["time"] for line in log if '"event": "step"' in line)
        metrics = state.metrics
    return {"samples_per_s": metrics["samples_per_s"], "seconds": metrics["train_seconds"],
            "tokens_per_s": metrics["tokens_per_s"], "accuracy": metrics.get("accuracy"),
            "val_loss": metrics["val_loss"], "launch_s": first_step - started}


# ---- reference: a default transformers.Trainer + PEFT script -----------------------------------------------
def run_reference(data: PreparedData, s: TrainSettings, location: str, out: str) -> dict:
    import transformers
    from peft import LoraConfig, TaskType, get_peft_model

    transformers.logging.set_verbosity_error()
    train_idx, val_idx = split(data, s.val_split, s.seed, s.max_val_rows)
    tok = transformers.AutoTokenizer.from_pretrained(location)
    transformers.set_seed(s.seed)
    if data.task == "classification":
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            location, num_labels=len(data.labels), dtype=torch.float32)
        task_type = TaskType.SEQ_CLS

        def dataset(idx: list[int]) -> list[dict]:
            rows = [data.examples[i] for i in idx]
            enc = tok([r["text"] for r in rows], padding="max_length", truncation=True, max_length=s.max_length)
            return [{**{k: enc[k][j] for k in enc}, "labels": r["label"]} for j, r in enumerate(rows)]
        tokens_of = None
    else:
        config = transformers.AutoConfig.from_pretrained(location)
        if hasattr(config, "quantization_config"):  # the de-quantised SmolLM2 folder still names GGUF
            del config.quantization_config
        model = transformers.AutoModelForCausalLM.from_pretrained(location, config=config, dtype=torch.float32)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        task_type = TaskType.CAUSAL_LM

        def dataset(idx: list[int]) -> list[dict]:
            rows, _ = encode_lm(tok, [data.examples[i] for i in idx], s.max_length)
            padded = []
            for r in rows:
                extra = s.max_length - len(r["input_ids"])
                padded.append({"input_ids": r["input_ids"] + [tok.pad_token_id] * extra,
                               "attention_mask": [1] * len(r["input_ids"]) + [0] * extra,
                               "labels": r["labels"] + [IGNORE] * extra})
            return padded
        tokens_of = sum
    model = get_peft_model(model, LoraConfig(task_type=task_type, r=s.lora_r, lora_alpha=s.lora_alpha,
                                             lora_dropout=s.lora_dropout, target_modules=s.target_modules))
    train_ds, val_ds = dataset(train_idx), dataset(val_idx)
    args = transformers.TrainingArguments(
        output_dir=out, per_device_train_batch_size=s.batch_size, per_device_eval_batch_size=s.batch_size,
        num_train_epochs=s.epochs, learning_rate=s.learning_rate, seed=s.seed, save_strategy="no",
        eval_strategy="no", report_to=[], disable_tqdm=True, logging_strategy="no",
    )
    hf = transformers.Trainer(model=model, args=args, train_dataset=train_ds)
    started = time.perf_counter()
    hf.train()
    seconds = time.perf_counter() - started
    samples = s.epochs * len(train_ds)
    result = {"samples_per_s": samples / seconds, "seconds": round(seconds, 2)}
    pred = hf.predict(val_ds)
    result["val_loss"] = float(pred.metrics["test_loss"])
    if tokens_of is None:
        result["accuracy"] = float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())
    else:
        real = s.epochs * tokens_of(sum(r["attention_mask"]) for r in train_ds)
        result["tokens_per_s"] = real / seconds
    return result



def lm_data(rows: int = 48) -> PreparedData:
    rng = random.Random(SEED)
    frame = pd.DataFrame([{"prompt": "Repeat: " + " ".join(rng.choice(FILLER) for _ in range(rng.randint(3, 30))),
                           "response": " ".join(rng.choice(FILLER) for _ in range(rng.randint(3, 60)))}
                          for _ in range(rows)])
    return prepare(Table(frame, "utf-8", ","), "causal-lm", ColumnMapping(prompt="prompt", response="response"))


def compare(name: str, data: PreparedData, s: TrainSettings, location: str, rounds: int, unit: str) -> float:
    ours, ref = [], []
    with tempfile.TemporaryDirectory() as out:
        for r in range(rounds):  # alternate, so a load burst hits both sides alike
            ours.append(run_ours(data, s, location))
            print(f"  round {r + 1} ours      {fmt(ours[-1], unit)}   ({load()})", flush=True)
            ref.append(run_reference(data, s, location, out))
            print(f"  round {r + 1} reference {fmt(ref[-1], unit)}   ({load()})", flush=True)
    best_ours, best_ref = max(ours, key=lambda m: m[unit]), max(ref, key=lambda m: m[unit])
    label = unit.replace("_per_s", "/s")
    print(f"  launch overhead (Start to first step): {min(m['launch_s'] for m in ours):.1f} s (best of {rounds})")
    print(f"{name}: ours {best_ours[unit]:.1f} {label}, reference Trainer {best_ref[unit]:.1f} {label}, "
          f"ratio {best_ours[unit] / best_ref[unit]:.2f}x (best of {rounds} each)")
    if best_ours.get("accuracy") is not None:
        print(f"  validation accuracy: ours {best_ours['accuracy']:.3f}, reference {best_ref['accuracy']:.3f}; "
              f"validation loss: ours {best_ours['val_loss']:.4f}, reference {best_ref['val_loss']:.4f}")
    else:
        print(f"  validation loss: ours {best_ours['val_loss']:.4f}, reference {best_ref['val_loss']:.4f}")
    return best_ours[unit] / best_ref[unit]


def compare_processes(data: PreparedData, s: TrainSettings, location: str) -> None:
    """Samples/s of the same run with 2 CPU processes (gloo) against 1, as measured."""
    one = run_ours(data, s, location, 1)
    two = run_ours(data, s, location, 2)
    print(f"  processes: 1 -> {one['samples_per_s']:.1f} samples/s (launch {one['launch_s']:.1f} s), "
          f"2 -> {two['samples_per_s']:.1f} samples/s (launch {two['launch_s']:.1f} s): "
          f"{two['samples_per_s'] / one['samples_per_s']:.2f}x on {os.cpu_count()} cores ({load()})")


def fmt(m: dict, unit: str) -> str:
    acc = f", accuracy {m['accuracy']:.3f}" if m.get("accuracy") is not None else ""
    return f"{m[unit]:7.1f} {unit.replace('_per_s', '/s')} in {m['seconds']:6.1f} s{acc}, val loss {m['val_loss']:.4f}"


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    ratio = float("nan")
    which = sys.argv[2] if len(sys.argv) > 2 else "cls"
    torch.set_num_threads(os.cpu_count() or 1)
    config = AppConfig.from_env()
    gpu = "CUDA available (this script trains on the CPU)" if torch.cuda.is_available() else "no GPU"
    print(f"cpu, {torch.get_num_threads()} threads, {gpu}; {load()}")
    if which in ("cls", "both"):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "topics.csv"
            synthetic_csv(path)
            from pipelines.tables import read_table

            data = prepare(read_table(path), "classification", ColumnMapping(text="text", label="label"))
        lengths = [len(e["text"].split()) for e in data.examples]
        print(f"classification: {len(data.examples)} rows, {min(lengths)}-{max(lengths)} words, {EPOCHS} epoch(s)")
        location = base_location("minilm-l6", config)
        ratio = compare("minilm-l6 classification", data, settings_for("classification"), location, rounds,
                        "samples_per_s")
        compare_processes(data, settings_for("classification"), location)
    if which in ("lm", "both"):
        lm_ratio = compare("smollm2-135m instruction tuning", lm_data(), settings_for("causal-lm"),
                           base_location("smollm2-135m-instruct", config), rounds, "tokens_per_s")
        if which == "lm":
            ratio = lm_ratio
    print(f"ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
