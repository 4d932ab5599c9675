"""LM Workbench: the composition root. Builds the Blocks with one tab per component, queues, launches."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from components.attention import build_attention_tab
from components.classify import build_classify_tab
from components.evaluate import build_evaluate_tab
from components.extract import build_extract_tab
from components.finetune import build_finetune_tab
from components.generate import build_generate_tab
from components.i18n import I18N, t
from components.language import language_middleware, language_selector
from components.models import build_models_tab
from components.openai_api import openai_routes
from components.shell_warmup import warmup_banner
from components.summarize import build_summarize_tab
from components.users_files import login_button, user_files_middleware
from components.users_gate import users_middleware
from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.sessions import session_key

ASSETS = Path(__file__).resolve().parent / "assets"

# (translation key of the tab title, builder). Each builder adds its components to the open Blocks.
TABS: tuple[tuple[str, Callable[[AppContext], dict]], ...] = (
    ("tab.generate", build_generate_tab),
    ("tab.models", build_models_tab),
    ("tab.attention", build_attention_tab),
    ("tab.finetune", build_finetune_tab),
    ("tab.classify", build_classify_tab),
    ("tab.summarize", build_summarize_tab),
    ("tab.extract", build_extract_tab),
    ("tab.evaluate", build_evaluate_tab),
)


def make_theme() -> gr.themes.Base:
    """The default theme with system fonts, so the page fetches nothing from other hosts."""
    sans = ["ui-sans-serif", "system-ui", "Segoe UI", "Noto Sans", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Consolas", "monospace"]
    return gr.themes.Default(font=sans, font_mono=mono)


def build_app(ctx: AppContext | None = None) -> gr.Blocks:
    """Build the whole UI; ``ctx`` defaults to one made from the environment."""
    ctx = ctx or AppContext.create()
    with gr.Blocks(title="LM Workbench") as demo:
        warmup_banner(ctx, demo)
        with gr.Row():
            gr.Markdown(t("app.title"), elem_id="app-title")
            language_selector(demo)
            login_button(ctx)  # "Sign in with Hugging Face" with LMW_HF_OAUTH only
        gr.Markdown(t("app.subtitle"))
        for key, builder in TABS:
            with gr.Tab(t(key), id=key.removeprefix("tab.")):
                builder(ctx)

    def end_session(request: gr.Request) -> None:
        """The browser tab closed: stop and forget the session's jobs and values."""
        ctx.sessions.end(session_key(request))

    demo.unload(end_session)
    set_queue(demo, max_size=ctx.config.queue_size)
    return demo


def set_queue(demo: gr.Blocks, max_size: int) -> None:
    """``demo.queue(default_concurrency_limit=1, max_size=...)`` without the server app it builds only for launch
    to build again (about half a second of start-up); falls back to ``queue()`` if Gradio's Queue changes."""
    from gradio import queueing

    try:
        demo._queue = queueing.Queue(
            live_updates=True, concurrency_count=demo.max_threads, update_intervals=1, max_size=max_size,
            blocks=demo, default_concurrency_limit=1,
        )
    except TypeError:
        demo.queue(default_concurrency_limit=1, max_size=max_size)


def launch_kwargs(config: AppConfig | None = None, ctx: AppContext | None = None) -> dict:
    """Launch settings honouring Hugging Face Spaces' and Docker's environment; with ``ctx``, its logins
    (``LMW_USERS``: Gradio's login checks the hashed passwords) and the users' gate on Gradio's routes."""
    config = config or (ctx.config if ctx is not None else AppConfig.from_env())
    auth = (config.username, config.password) if config.username and config.password else None
    if ctx is not None and ctx.users.passwords:
        auth = ctx.users.check
    return {
        "server_name": config.server_name,
        "server_port": config.server_port,
        "theme": make_theme(),
        "css_paths": [ASSETS / "style.css"],
        "i18n": I18N,
        "auth": auth,
        "allowed_paths": [str(ASSETS)],
        "show_error": True,
        "max_file_size": f"{config.max_upload_mb}mb",  # refused at upload, before anything is written to disk
        # Gradio's "Runs" footer link has no Chinese text: the footer keeps its translated links only.
        "footer_links": ["api", "gradio", "settings"],
        "ssr_mode": False,  # the page comes from Python, so the language switch's middleware can reach it
        "app_kwargs": {"middleware": [*language_middleware(), *user_files_middleware(ctx),
                                      *(users_middleware(ctx) if ctx else [])]},
    }


def main() -> None:
    config = AppConfig.from_env()
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(name)s: %(message)s")
    if config.space_id:  # a Space installs requirements.txt only: add the embedded models
        from pipelines.prepare import ensure_embedded_packages

        ensure_embedded_packages()
    ctx = AppContext.create(config)
    demo = build_app(ctx)
    demo.launch(prevent_thread_lock=True, **launch_kwargs(config, ctx))
    demo.app.include_router(openai_routes(ctx))  # the OpenAI-compatible /v1 API on the same port
    ctx.start_warmup()  # the page is served already; the banner shows what is being prepared
    demo.block_thread()


if __name__ == "__main__":
    main()
