"""Models tab: see the embedded models, load any model on demand, unload to free memory."""

from __future__ import annotations

import gradio as gr

from components.common import examples, model_picker, progress_reporter, run_example, ui_errors
from components.i18n import request_lang, t, text
from pipelines.context import HEAVY, AppContext
from pipelines.models import EMBEDDED
from pipelines.models.embedded import is_cached

KINDS = ["auto", "causal-lm", "encoder", "seq-cls", "token-cls", "qa", "seq2seq"]
COLUMNS = ["model", "adapter", "kind", "device", "dtype", "attention", "size_mb", "load_seconds"]


def _loaded_rows(ctx: AppContext) -> list[list]:
    return [[row[c] for c in COLUMNS] for row in ctx.manager.loaded()]


def _embedded_rows(ctx: AppContext) -> list[list[str]]:
    rows = []
    for spec in EMBEDDED.values():
        state = "ready"
        if spec.fmt == "gguf":
            state = "cached" if is_cached(spec, ctx.config.cache_dir) else "converted on first use"
        rows.append([spec.name, spec.description, spec.pip_name, state])
    return rows


def build_models_tab(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Build the Models tab inside the current Blocks context."""
    gr.Markdown(t("models.intro"))
    embedded = gr.Dataframe(
        value=_embedded_rows(ctx), headers=["name", "description", "package", "state"],
        label=t("models.embedded"), interactive=False,
    )
    with gr.Row():
        picker = model_picker(ctx, kinds=("any",))
        kind = gr.Dropdown(KINDS, value="auto", label=t("models.kind"))
        dtype = gr.Dropdown(["auto", "float32", "bfloat16", "float16", "int8"], value="auto", label=t("models.dtype"))
    with gr.Row():
        load_btn = gr.Button(t("models.load"), variant="primary")
        unload_btn = gr.Button(t("models.unload"))
        unload_all_btn = gr.Button(t("models.unload_all"), variant="stop")
    model_examples = examples([["minilm-l6", "encoder", "auto"], ["smollm2-135m-instruct", "causal-lm", "auto"]],
                              [picker, kind, dtype])
    status = gr.Markdown(elem_id="models-status")
    loaded = gr.Dataframe(value=_loaded_rows(ctx), headers=COLUMNS, label=t("models.loaded"), interactive=False)

    @ui_errors
    def load(ref: str, kind_name: str, dtype_name: str, progress: gr.Progress = gr.Progress()) -> tuple:
        model = ctx.manager.load(
            ref, None if kind_name == "auto" else kind_name, dtype=dtype_name, progress=progress_reporter(progress)
        )
        info = model.describe()
        msg = text("models.loaded_msg", request_lang(), model=info["model"], kind=info["kind"], dtype=info["dtype"],
                   device=info["device"], seconds=info["load_seconds"])
        return msg, _loaded_rows(ctx), _embedded_rows(ctx)

    def unload(ref: str | None) -> tuple:
        count = ctx.manager.unload(ref)
        return text("models.unloaded_msg", request_lang(), count=count), _loaded_rows(ctx)

    load_btn.click(
        load, [picker, kind, dtype], [status, loaded, embedded], api_name="load_model", concurrency_id=HEAVY
    )
    unload_btn.click(unload, [picker], [status, loaded], api_name="unload_model")
    run_example(model_examples, load, [picker, kind, dtype], [status, loaded, embedded], concurrency_id=HEAVY)
    unload_all_btn.click(lambda: unload(None), None, [status, loaded], api_visibility="private")
    return {"picker": picker, "kind": kind, "dtype": dtype, "load": load_btn, "status": status, "loaded": loaded}
