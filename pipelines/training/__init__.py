"""LoRA fine-tuning core (no UI): settings, data preparation, the training loop, metrics and run folders."""
