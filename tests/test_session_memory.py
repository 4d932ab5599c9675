"""Memory per session: large results (attention weights) live in one bounded server-side cache keyed by session
(pipelines/result_cache.py, ``ctx.results``), the page's gr.State keeps a small ticket, entries go when the session
ends and by size, and a miss recomputes the same view."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from components.attention_events import run_outputs
from components.attention_handlers import AttentionHandlers
from pipelines.context import AppContext
from pipelines.errors import InputError
from pipelines.result_cache import ResultCache, Ticket

MB = 2**20
TEXT = "The animal didn't cross the street because it was too tired."


def block(mb: float) -> np.ndarray:
    return np.zeros(int(mb * MB) // 4, dtype=np.float32)


def test_eviction_by_size_drops_the_least_recently_used() -> None:
    cache = ResultCache(budget_bytes=10 * MB)
    a = cache.put("s1", "attention", block(4))
    b = cache.put("s2", "attention", block(4))
    assert cache.get(a) is not None  # s1 is now the most recently used
    c = cache.put("s3", "attention", block(4))
    assert cache.get(b) is None and cache.get(a) is not None and cache.get(c) is not None
    assert cache.bytes_used <= 10 * MB and cache.evictions == 1
    huge = cache.put("s4", "attention", block(11))  # larger than the whole budget: not kept, others stay
    assert cache.get(huge) is None and len(cache) == 2


def test_a_session_keeps_one_result_per_kind_and_loses_it_on_session_end() -> None:
    cache = ResultCache(budget_bytes=100 * MB)
    old = cache.put("s1", "attention", block(2))
    new = cache.put("s1", "attention", block(3))
    other = cache.put("s2", "attention", block(1))
    assert cache.get(old) is None and cache.get(new) is not None  # a new run replaces the last one
    assert 3 * MB <= cache.session_bytes("s1") < 4 * MB
    assert cache.end("s1") >= 3 * MB
    assert cache.get(new) is None and cache.get(other) is not None and cache.session_bytes("s1") == 0
    assert not cache.restore(old, block(1)) or cache.get(old) is not None


def test_restore_keeps_a_recomputed_value_under_the_same_ticket_but_never_over_a_newer_one() -> None:
    cache = ResultCache(budget_bytes=100 * MB)
    first = cache.put("s1", "attention", block(1))
    cache.end("s1")
    assert cache.restore(first, block(1)) and cache.get(first) is not None
    second = cache.put("s1", "attention", block(1))
    assert not cache.restore(first, block(1)) and cache.get(second) is not None and cache.get(first) is None


def test_idle_entries_expire() -> None:
    cache = ResultCache(budget_bytes=100 * MB, idle_seconds=1e-6)
    ticket = cache.put("s1", "attention", block(1))
    assert cache.get(ticket) is None and len(cache) == 0


def test_ending_a_browser_session_empties_its_cache_entries(ctx: AppContext) -> None:
    ticket = ctx.results.put("browser-1", "attention", block(1))
    kept = ctx.results.put("browser-2", "attention", block(1))
    ctx.sessions.end("browser-1")  # what the app's unload event calls
    assert ctx.results.get(ticket) is None and ctx.results.get(kept) is not None


@pytest.fixture
def llama(tiny_root: Path) -> str:
    return str(tiny_root / "tiny-llama")


def plot_data(plots) -> list[str]:
    """Every figure of the views as plotly JSON (data, labels and layout)."""
    return [fig.to_json() for fig in plots.as_tuple()]


def test_the_page_state_holds_a_small_ticket_and_a_miss_recomputes_the_same_view(ctx: AppContext, llama) -> None:
    handlers = AttentionHandlers(ctx)
    view = handlers.run(llama, TEXT, "", 64, 1, 0, session="s1")
    state = run_outputs(view)[0]
    assert isinstance(state, Ticket) and len(pickle.dumps(state)) < 4096
    assert ctx.results.get(state) is view.result and ctx.results.session_bytes("s1") >= view.result.attentions.nbytes
    before = plot_data(handlers.reselect(state, 1, 0, 3))
    ctx.sessions.end("s1")
    assert ctx.results.get(state) is None
    after = handlers.reselect(state, 1, 0, 3)  # a miss: recomputed from the ticket's recipe
    assert plot_data(after) == before
    assert ctx.results.get(state) is not None  # and kept again under the same ticket
    html, _ = handlers.relayer(state, 0, 0, 0)
    assert html.startswith("<iframe")


def test_results_are_evicted_by_size_across_sessions(ctx: AppContext, llama) -> None:
    handlers = AttentionHandlers(ctx)
    first = handlers.run(llama, TEXT, "", 64, 0, 0, session="s1")
    budget = int(first.result.attentions.nbytes * 1.5) + 4096
    ctx.results.budget_bytes = budget
    second = handlers.run(llama, TEXT + " Again.", "", 64, 0, 0, session="s2")
    assert ctx.results.get(first.ticket) is None and ctx.results.get(second.ticket) is second.result
    assert ctx.results.bytes_used <= budget


def test_no_run_yet_is_a_clear_error(ctx: AppContext) -> None:
    handlers = AttentionHandlers(ctx)
    with pytest.raises(InputError) as caught:
        handlers.reselect(None, 0, 0, 0)
    assert caught.value.key == "attention.err.run_first"
    with pytest.raises(InputError):
        handlers.reselect(Ticket("s1", "attention", 99), 0, 0, 0)  # dropped and nothing to recompute it from


@pytest.fixture
def app_without_cache(tmp_path: Path, shared_cache_dir: Path):
    """The real app with a result cache of 0 MB: every re-selection misses and recomputes."""
    from tests.app_server import running_app

    with running_app(tmp_path / "data", shared_cache_dir, {"LMW_RESULT_CACHE_MB": "0"}) as server:
        yield server


@pytest.mark.browser
def test_in_the_browser_a_miss_recomputes_and_the_views_follow_the_sliders(browser, app_without_cache) -> None:
    from tests.conftest import open_tab

    context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(app_without_cache["url"], wait_until="load")
        page.get_by_role("tab").first.wait_for(timeout=60_000)
        open_tab(page, "Attention")
        page.locator("#attention-run").click()
        page.locator("#attention-note").get_by_text("layers x").wait_for(timeout=120_000)
        page.get_by_role("tab", name="Heatmaps").click()
        heatmap = page.locator("#attention-heatmap .js-plotly-plot")
        heatmap.locator(".gtitle", has_text="Layer 0").wait_for(timeout=60_000)
        layer_box = page.get_by_label("number input for Layer", exact=True)
        layer_box.fill("3")
        layer_box.press("Enter")
        layer_box.blur()
        heatmap.locator(".gtitle", has_text="Layer 3").wait_for(timeout=120_000)  # recomputed on the server
        # no error sentence (once the slider's own follow-up events have finished: meanwhile Gradio shows a timer)
        expect(page.locator("#attention-errors")).to_have_text(re.compile(r"^\s*$"), timeout=120_000)
    finally:
        context.close()
    assert not errors, errors
