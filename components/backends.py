"""The Backends section (for the Models tab): remote OpenAI-compatible endpoints, their models, reachability
and latency. Layout and wiring only; the handlers are :class:`components.backends_handlers.BackendsHandlers`.

Its models appear in the Generate tab's model picker as ``remote:<endpoint>/<model>``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import gradio as gr

from components.backends_handlers import BackendsHandlers, EndpointTable
from components.common import ErrorLine
from components.i18n import request_lang, t

PRIVATE = MappingProxyType({"api_visibility": "private"})


def _update(table: EndpointTable) -> tuple[Any, Any, str]:
    """The table, the endpoint picker, and an emptied key box (a key is never shown back)."""
    names = [row[0] for row in table.rows]
    return gr.Dataframe(value=table.rows, headers=table.headers), gr.Dropdown(choices=names), ""


def build_backends_section(ctx: Any) -> dict[str, gr.components.Component]:
    """Build the section inside the current Blocks context (the Models tab calls it)."""
    handlers = BackendsHandlers(ctx)
    c: dict[str, Any] = {}
    with gr.Accordion(t("engines.backends"), open=False, elem_id="backends"):
        gr.Markdown(t("engines.backends_intro"))
        with gr.Row():
            c["name"] = gr.Textbox(label=t("engines.name"), max_length=40, elem_id="backends-name", scale=1)
            c["url"] = gr.Textbox(label=t("engines.url"), placeholder=t("engines.url_placeholder"), max_length=500,
                                  elem_id="backends-url", scale=2)
            c["key"] = gr.Textbox(label=t("engines.key"), type="password", max_length=500, elem_id="backends-key",
                                  info=t("engines.key_info"), scale=2)
        with gr.Row():
            c["add"] = gr.Button(t("engines.add"), variant="primary", elem_id="backends-add")
            c["check"] = gr.Button(t("engines.check"), elem_id="backends-check")
            c["pick"] = gr.Dropdown(handlers.names(), label=t("engines.endpoint"), elem_id="backends-pick", scale=2)
            c["remove"] = gr.Button(t("engines.remove"), variant="stop", elem_id="backends-remove")
        c["errors"] = ErrorLine(ctx, "backends-errors")
        c["table"] = gr.Dataframe(value=handlers.table("en").as_value(), interactive=False,
                                  wrap=True, label=t("engines.endpoints"), elem_id="backends-table")
    _wire(handlers, c)
    return {k: v for k, v in c.items() if isinstance(v, gr.components.Component)}


def _wire(handlers: BackendsHandlers, c: dict[str, Any]) -> None:
    errors, outputs = c["errors"], [c["table"], c["pick"], c["key"]]

    def add(name: str, url: str, key: str, request: gr.Request) -> tuple:
        return _update(handlers.add(name, url, key, request_lang(request)))

    def check(request: gr.Request) -> tuple:
        return _update(handlers.check(request_lang(request)))

    def remove(name: str, request: gr.Request) -> tuple:
        return _update(handlers.remove(name, request_lang(request)))

    events = [c["add"].click(errors.guard(add), [c["name"], c["url"], c["key"]], outputs, **PRIVATE),
              c["check"].click(errors.guard(check), None, outputs, **PRIVATE),
              c["remove"].click(errors.guard(remove), c["pick"], outputs, **PRIVATE)]
    errors.watch(*events)

    def table(request: gr.Request) -> Any:
        return handlers.table(request_lang(request)).as_value()

    demo = gr.context.Context.root_block
    if demo is not None:  # the table in the page's language, with endpoints added since the app started
        demo.load(table, None, c["table"], **PRIVATE)
