"""Fine-tuning throughput: our LoRA training loop against ``transformers.Trainer`` on the same model and LoRA.

* classification: MiniLM-L6 + sequence-classification head, LoRA r=8 on query/value, 64 tokens, batch 16
  -> training samples/s;
* causal LM: SmolLM2-135M-Instruct, LoRA r=8 on q_proj/v_proj, prompt+response ~64 tokens, batch 4
  -> training tokens/s (non-padding tokens).

Both sides train the same number of optimizer steps on the same rows with the same LoRA config, float32 on the
CPU, all CPU threads; the two loops alternate and the best round of each is compared (the machine may be
shared). Evaluation time is not counted on either side. Ratio > 1 means our loop is faster.
Ballpark on 2 cores: ~42 samples/s and ~130 tokens/s.

Run: .venv/bin/python bench/finetune.py [steps=8] [rounds=3] [both|cls|lm]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from pipelines.config import AppConfig  # noqa: E402
from pipelines.tables import Table  # noqa: E402
from pipelines.training.data import ColumnMapping, prepare  # noqa: E402
from pipelines.training.job import base_location  # noqa: E402
from pipelines.training.settings import TrainSettings  # noqa: E402
from pipelines.training.tokenize import collate  # noqa: E402
from pipelines.training.trainer import LoraTrainer  # noqa: E402

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven",
         "wizards", "quietly", "box", "with", "jolly", "giants"]


def sentence(i: int, words: int) -> str:
    return " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(words))


def cls_data(rows: int):
    frame = pd.DataFrame({"text": [sentence(i, 80) for i in range(rows)],
                          "label": ["a" if i % 2 else "b" for i in range(rows)]})
    return prepare(Table(frame, "utf-8", ","), "classification", ColumnMapping(text="text", label="label"))


def lm_data(rows: int):
    frame = pd.DataFrame({"prompt": [f"Repeat: {sentence(i, 12)}" for i in range(rows)],
                          "response": [sentence(i, 14) for i in range(rows)]})
    return prepare(Table(frame, "utf-8", ","), "causal-lm", ColumnMapping(prompt="prompt", response="response"))


def our_loop(data, settings: TrainSettings, location: str) -> tuple[LoraTrainer, Callable[[], dict]]:
    """Our trainer, set up once; each call trains one epoch (fresh optimizer) and returns its throughput."""
    trainer = LoraTrainer(data, settings, location)
    trainer.setup()

    def run() -> dict:
        metrics = trainer.train()
        return {"samples_per_s": metrics["samples_per_s"], "tokens_per_s": metrics["tokens_per_s"]}

    return trainer, run


def hf_loop(trainer: LoraTrainer, settings: TrainSettings, steps: int, out: str) -> Callable[[], dict]:
    """transformers.Trainer on a fresh copy of the same base model and LoRA config, same rows and batch size."""
    import transformers
    from peft import get_peft_model

    kwargs = {"num_labels": len(trainer.data.labels)} if trainer.task == "classification" else {}
    auto = (transformers.AutoModelForSequenceClassification if trainer.task == "classification"
            else transformers.AutoModelForCausalLM)
    config = transformers.AutoConfig.from_pretrained(trainer.location, **kwargs)
    if hasattr(config, "quantization_config"):  # the de-quantised SmolLM2 folder still names GGUF; weights are fp32
        del config.quantization_config
    base = auto.from_pretrained(trainer.location, config=config)
    base.config.pad_token_id = trainer.tokenizer.pad_token_id
    model = get_peft_model(base, trainer.model.peft_config["default"])
    args = transformers.TrainingArguments(
        output_dir=out, per_device_train_batch_size=settings.batch_size, max_steps=steps,
        learning_rate=settings.learning_rate, warmup_steps=0, logging_steps=10_000, save_strategy="no",
        report_to=[], disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False, seed=settings.seed,
    )
    hf = transformers.Trainer(model=model, args=args, train_dataset=trainer.train_rows,
                              data_collator=lambda rows: collate(trainer.tokenizer, rows, trainer.task))
    tokens_per_row = sum(len(r["input_ids"]) for r in trainer.train_rows) / len(trainer.train_rows)

    def run() -> dict:
        started = time.perf_counter()
        hf.train()
        seconds = time.perf_counter() - started
        samples = steps * settings.batch_size
        return {"samples_per_s": samples / seconds, "tokens_per_s": samples * tokens_per_row / seconds}

    return run


def bench(name: str, data, settings: TrainSettings, location: str, steps: int, unit: str, rounds: int) -> None:
    """Interleave the two loops ``rounds`` times (the machine may be shared) and compare the best of each."""
    trainer, mine = our_loop(data, settings, location)
    with tempfile.TemporaryDirectory() as out:
        theirs = hf_loop(trainer, settings, steps, out)
        ours_runs, hf_runs = [], []
        for _ in range(rounds):
            ours_runs.append(mine()[unit])
            hf_runs.append(theirs()[unit])
    best_ours, best_hf = max(ours_runs), max(hf_runs)
    label = unit.replace("_per_s", "/s")
    print(f"{name:<34} ours {best_ours:8.1f} {label:<10} HF Trainer {best_hf:8.1f}   ratio {best_ours / best_hf:.2f}x"
          f"   (best of {rounds}; ours {', '.join(f'{v:.1f}' for v in ours_runs)}; "
          f"HF {', '.join(f'{v:.1f}' for v in hf_runs)})")


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    which = sys.argv[3] if len(sys.argv) > 3 else "both"
    torch.set_num_threads(os.cpu_count() or 1)
    config = AppConfig.from_env()
    print(f"device cpu, {torch.get_num_threads()} threads, {steps} optimizer steps per measurement")
    common = {"epochs": 1, "eval_every": 10_000, "val_split": 0.05, "max_val_rows": 10, "warmup_ratio": 0.0,
              "lora_r": 8, "lora_alpha": 16, "sample_tokens": 1}
    cls = TrainSettings.from_dict({**common, "batch_size": 16, "max_length": 64, "learning_rate": 1e-3})
    rows = int(steps * cls.batch_size / 0.95) + 2
    if which in ("both", "cls"):
        bench("classification minilm-l6 @64 tok", cls_data(rows), cls, base_location("minilm-l6", config), steps,
              "samples_per_s", rounds)
    lm = TrainSettings.from_dict({**common, "batch_size": 4, "max_length": 128, "learning_rate": 5e-4})
    rows = int(steps * lm.batch_size / 0.95) + 2
    if which in ("both", "lm"):
        bench("causal-lm smollm2-135m", lm_data(rows), lm, base_location("smollm2-135m-instruct", config), steps,
              "tokens_per_s", rounds)


if __name__ == "__main__":
    main()
