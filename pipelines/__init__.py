"""Task pipelines, model loading and training for LM Workbench (no Gradio imports)."""
