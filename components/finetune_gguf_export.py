"""The Fine-tune runs panel's "Export merged GGUF" button: a run merged into one llama.cpp model file.

Wiring only; the work is :meth:`components.finetune_handlers.FinetuneHandlers.export_gguf`
(``pipelines.training.gguf_merged``). It is also the ``/export_gguf`` API endpoint; ``merge_run`` is unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from components.common import progress_reporter
from components.i18n import request_lang
from components.users import user_of
from pipelines.context import HEAVY

if TYPE_CHECKING:
    from components.finetune_handlers import FinetuneHandlers


def wire_gguf_export(handlers: FinetuneHandlers, runs: Any) -> None:
    """Wire ``runs.gguf`` (the button) to export the picked run into ``runs.action`` (the status line)."""
    if getattr(runs, "gguf", None) is None:
        return

    def export_gguf(run: str | None, request: gr.Request, progress: gr.Progress = gr.Progress()) -> str:
        return handlers.export_gguf(run, request_lang(request), progress_reporter(progress),
                                    user_of(handlers.ctx, request))

    event = runs.gguf.click(runs.errors.guard(export_gguf), runs.pick, runs.action, api_name="export_gguf",
                            concurrency_id=HEAVY)
    runs.errors.watch(event)
