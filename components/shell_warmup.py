"""The app shell's warm-up banner: what the start-up preparation is doing, with progress; gone when it is done."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import gradio as gr

from components.i18n import request_lang, text
from pipelines.context import AppContext

POLL_SECONDS = 1.0
QUIET = MappingProxyType({"queue": False, "show_progress": "hidden", "api_visibility": "private"})


def banner_text(ctx: AppContext, lang: str) -> str | None:
    """The banner's Markdown in ``lang``, or None when there is nothing to show."""
    if ctx.warmup is None:
        return None
    now = ctx.warmup.status()
    if not now.visible or now.step is None:
        return None
    return text("warmup.banner", lang, step=now.step.render(lang), done=now.done + 1, total=now.total,
                percent=round(100 * now.fraction))


def warmup_banner(ctx: AppContext, demo: gr.Blocks) -> gr.Markdown:
    """A banner at the top of the page, polled every second while the preparation runs."""
    banner = gr.Markdown(visible=False, elem_id="warmup-banner", elem_classes=["lmw-warmup-banner"])
    timer = gr.Timer(POLL_SECONDS, active=True)

    def poll() -> tuple[Any, Any]:
        message = banner_text(ctx, request_lang())
        running = ctx.warmup is not None and ctx.warmup.state in ("pending", "planning", "running")
        if message is None:
            return gr.Markdown(value="", visible=False), gr.Timer(active=running and ctx.config.warmup)
        return gr.Markdown(value=message, visible=True), gr.Timer(active=True)

    demo.load(poll, None, [banner, timer], **QUIET)
    timer.tick(poll, None, [banner, timer], **QUIET)
    return banner
