"""Gradio UI: one module per tab, each exporting ``build_<tab>_tab(ctx) -> dict[str, Component]``."""
