"""The Generate tab's "Why this token?" panel: click a token of the answer (or type its index) to see the top-10
alternatives at that step, the step's attention over the prompt and earlier tokens, and the attributions.

Layout and event wiring only (work: :class:`~components.generate_inspect_handlers.InspectHandlers`). The Generate
tab places :func:`inspect_panel` under its token view and calls :func:`wire_inspect`; it also remembers each
session's last exchange with :func:`pipelines.insight.generated.remember_exchange`, which the panel reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from components.common import ErrorLine, progress_reporter, ui_errors
from components.generate_inspect_handlers import InspectHandlers
from components.i18n import request_lang, t
from components.insight_export import svg_export_script
from pipelines.context import HEAVY, AppContext
from pipelines.insight.attribution import DEFAULT_STEPS, AttributionMethod
from pipelines.sessions import session_key

# A click on a token of any token view (spans with data-index) fills the index box and runs the inspection;
# the arrow keys move the focus between tokens.
CLICK_JS = """
if (!window.__lmwInspect) {
  window.__lmwInspect = true;
  const pick = (tok) => {
    const box = document.querySelector('#generate-inspect-index input');
    if (!box) return;
    box.value = tok.dataset.index;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    document.querySelectorAll('.lmw-tok.lmw-picked').forEach(e => e.classList.remove('lmw-picked'));
    tok.classList.add('lmw-picked');
    setTimeout(() => document.querySelector('#generate-inspect-run')?.click(), 100);
  };
  document.addEventListener('click', (ev) => {
    const tok = ev.target.closest && ev.target.closest('.lmw-tok[data-index]');
    if (tok) pick(tok);
  });
  document.addEventListener('keydown', (ev) => {
    const tok = ev.target.closest && ev.target.closest('.lmw-tok[data-index]');
    if (!tok) return;
    if (ev.key === 'Enter') { pick(tok); ev.preventDefault(); return; }
    const all = Array.from(tok.parentElement.querySelectorAll('.lmw-tok[data-index]'));
    const step = ev.key === 'ArrowRight' ? 1 : ev.key === 'ArrowLeft' ? -1 : 0;
    const next = step && all[all.indexOf(tok) + step];
    if (next) { next.focus(); ev.preventDefault(); }
  });
}
"""
PICKED_CSS = ".lmw-tok.lmw-picked{outline:2px solid #dc2626}"


@dataclass
class InspectWidgets:
    index: gr.Number
    layer: gr.Slider
    head: gr.Slider
    attribution: gr.Radio
    run: gr.Button
    errors: ErrorLine
    note: gr.Markdown
    alternatives: gr.Plot
    attention: gr.HTML
    attributions: gr.HTML
    download: gr.File
    result: gr.State

    @property
    def outputs(self) -> list[Any]:
        return [self.note, self.alternatives, self.attention, self.attributions, self.download, self.layer,
                self.head, self.result]


def inspect_panel(ctx: AppContext) -> InspectWidgets:
    """The panel (place it under the token view)."""
    with gr.Accordion(t("insight.token.title"), open=True, elem_id="generate-inspect"):
        gr.HTML(f"<style>{PICKED_CSS}</style>", js_on_load=CLICK_JS, padding=False, elem_id="generate-inspect-js")
        gr.Markdown(t("insight.token.intro"))
        with gr.Row():
            index = gr.Number(value=0, precision=0, minimum=0, label=t("insight.token.index"),
                              elem_id="generate-inspect-index")
            layer = gr.Slider(-1, 127, value=-1, step=1, label=t("insight.token.layer"))
            head = gr.Slider(-1, 127, value=-1, step=1, label=t("insight.token.head"))
        with gr.Row():
            methods = [(t(f"insight.why.method_{m.value}"), m.value) for m in AttributionMethod]
            attribution = gr.Radio(methods, value=AttributionMethod.INTEGRATED_GRADIENTS.value,
                                   label=t("insight.why.method"))
            run = gr.Button(t("insight.token.run"), elem_id="generate-inspect-run")
        errors = ErrorLine(ctx, "generate-inspect-errors")
        note = gr.Markdown(elem_id="generate-inspect-note")
        alternatives = gr.Plot(show_label=False, elem_id="generate-inspect-alternatives")
        attention = gr.HTML(elem_id="generate-inspect-attention")
        attributions = gr.HTML(elem_id="generate-inspect-attributions")
        download = gr.File(label=t("insight.export.images"), interactive=False, file_count="multiple",
                           elem_id="generate-inspect-download")
        svg_export_script()
    return InspectWidgets(index, layer, head, attribution, run, errors, note, alternatives, attention, attributions,
                          download, gr.State(None))


def wire_inspect(ctx: AppContext, widgets: InspectWidgets) -> None:
    """Inspect (button, token click) and re-select a layer or head of the last inspection without recomputing."""
    handlers = InspectHandlers(ctx)
    errors = widgets.errors

    def inspect(index: float, layer: float, head: float, attribution: str, request: gr.Request,
                progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        # first the alternatives and the attention (one forward pass), then the attributions
        for view in handlers.inspect_steps(session_key(request), index, layer, head, attribution, request_lang(),
                                           progress_reporter(progress)):
            yield (view.note, view.alternatives, view.attention_html, view.attribution_html, view.files or None,
                   gr.Slider(maximum=view.layers - 1), gr.Slider(maximum=view.heads - 1), view.result)

    def reselect(result: Any, layer: float, head: float) -> tuple:
        if result is None:
            return gr.skip(), gr.skip(), gr.skip()
        view = handlers.view(result, layer, head, request_lang())  # the downloads follow the layer and head
        return view.attention_html, view.attribution_html, view.files or gr.skip()

    inputs = [widgets.index, widgets.layer, widgets.head, widgets.attribution]
    errors.watch(widgets.run.click(errors.guard(inspect), inputs, widgets.outputs, api_visibility="private",
                                   concurrency_id=HEAVY))
    for slider in (widgets.layer, widgets.head):
        slider.release(reselect, [widgets.result, widgets.layer, widgets.head],
                       [widgets.attention, widgets.attributions, widgets.download], api_visibility="private",
                       queue=False)


def wire_inspect_api(ctx: AppContext) -> None:
    """The ``/inspect_token`` endpoint (JSON only, no UI)."""
    handlers = InspectHandlers(ctx)

    def inspect_token(prompt: str, answer: str, index: int, model: str, settings: dict | None = None,
                      attribution: str = "integrated_gradients", steps: int = DEFAULT_STEPS) -> dict:
        """Why this token? For token ``index`` (0-based) of ``answer`` generated after ``prompt`` by ``model``
        (settings: mode chat|completion|auto, precision, system): the top-10 alternatives at that step (as
        /next_tokens on the same prefix), the step's attention over the earlier tokens per layer (mean over heads;
        rows sum to 1, zero after the step) and the attribution of the token's log-probability to every earlier
        token (integrated_gradients, steps in one batch | gradient_x_input)."""
        return handlers.api_json(prompt, answer, index, model, settings, attribution, steps, request_lang())

    gr.api(ui_errors(inspect_token), api_name="inspect_token", concurrency_id=HEAVY)
