"""Models tab: see the embedded models and the default chat model, load any model on demand, unload to free memory.

Layout and event wiring only; the work is in :class:`components.models_handlers.ModelsHandlers`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import gradio as gr
from gradio.context import Context

from components.backends import build_backends_section
from components.common import ErrorLine, examples, model_picker, progress_reporter, run_example
from components.i18n import t
from components.models_handlers import ModelsHandlers, dtype_choices, kind_choices
from pipelines.context import HEAVY, AppContext

REFRESH_SECONDS = 5.0  # how often an open page checks whether models were loaded or unloaded elsewhere
QUIET = MappingProxyType({"queue": False, "show_progress": "hidden", "api_visibility": "private"})


def _choices(pairs: list[tuple[str | None, str]]) -> list[tuple[Any, str]]:
    return [(t(key) if key else value, value) for key, value in pairs]


def _settings(ctx: AppContext, handlers: ModelsHandlers) -> dict[str, Any]:
    gr.Markdown(t("models.intro"))
    gr.Textbox(value=ctx.config.chat_model, label=t("models.chat_model"), info=t("models.chat_model_info"),
               interactive=False, elem_id="models-chat-model")
    embedded = gr.Dataframe(value=handlers.embedded_table("en"), label=t("models.embedded"), interactive=False,
                            wrap=True, elem_id="models-embedded")
    with gr.Row():
        picker = model_picker(ctx, kinds=("any",), elem_id="models-picker")
        kind = gr.Dropdown(_choices(kind_choices()), value="auto", label=t("models.kind"))
        dtype = gr.Dropdown(_choices(dtype_choices()), value="auto", label=t("models.dtype"))
    return {"embedded": embedded, "picker": picker, "kind": kind, "dtype": dtype}


def build_models_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Models tab inside the current Blocks context (and the tab's ``select`` event, if in a Tab)."""
    handlers = ModelsHandlers(ctx)
    tab, demo = Context.block, Context.root_block
    parts = _settings(ctx, handlers)
    picker, embedded = parts["picker"], parts["embedded"]
    with gr.Row():
        load_btn = gr.Button(t("models.load"), variant="primary")
        unload_btn = gr.Button(t("models.unload"))
        unload_all_btn = gr.Button(t("models.unload_all"), variant="stop")
    errors = ErrorLine(ctx, "models-errors")
    model_examples = examples([["minilm-l6"], ["smollm2-135m-instruct"]], [picker])
    status = gr.Markdown(elem_id="models-status")
    loaded = gr.Dataframe(value=handlers.loaded_table("en"), label=t("models.loaded"), interactive=False,
                          wrap=True, elem_id="models-loaded")
    seen = gr.State(-1)

    def load(ref: str, kind_name: str, dtype_name: str, progress: gr.Progress = gr.Progress()) -> tuple:
        return handlers.load(ref, kind_name, dtype_name, progress_reporter(progress))

    def unload(ref: str | None) -> tuple:
        return handlers.unload(ref)

    def refresh(version: int | None) -> tuple:
        table, emb, now = handlers.refresh(version)
        return (gr.skip(), gr.skip(), now) if table is None else (table, emb, now)

    inputs = [picker, parts["kind"], parts["dtype"]]
    events = [
        load_btn.click(errors.guard(load), inputs, [status, loaded, embedded], api_name="load_model",
                       concurrency_id=HEAVY),
        unload_btn.click(errors.guard(unload), [picker], [status, loaded], api_name="unload_model"),
        unload_all_btn.click(errors.guard(lambda: unload(None)), None, [status, loaded], api_visibility="private"),
        run_example(model_examples, errors.guard(load), inputs, [status, loaded, embedded], concurrency_id=HEAVY),
    ]
    errors.watch(*events)
    tables = [loaded, embedded, seen]
    for event in events:  # the page's own change: remember the version so the timer does not redraw
        event.then(lambda: refresh(None), None, tables, **QUIET)
    if demo is not None:
        demo.load(lambda: refresh(None), None, tables, **QUIET)
    if isinstance(tab, gr.Tab):
        tab.select(lambda: refresh(None), None, tables, **QUIET)
    gr.Timer(REFRESH_SECONDS).tick(refresh, [seen], tables, **QUIET)
    backends = build_backends_section(ctx)  # remote OpenAI-compatible endpoints (vLLM, TGI, llama.cpp, Ollama)
    return {**{f"backends_{k}": v for k, v in backends.items()},
            "picker": picker, "kind": parts["kind"], "dtype": parts["dtype"], "load": load_btn, "status": status,
            "loaded": loaded, "embedded": embedded, "errors": errors.box}
