"""Closing the browser during a batch job stops the job: nothing runs on with nobody to stop it."""

from __future__ import annotations

import time

import pytest

import app
from pipelines.context import AppContext
from tests.app_server import free_port
from tests.conftest import choose


@pytest.mark.browser
def test_closing_the_page_stops_a_running_batch_job(browser, ctx: AppContext, tmp_path) -> None:
    demo = app.build_app(ctx)
    port = free_port()
    kwargs = {**app.launch_kwargs(), "server_port": port, "auth": None}
    demo.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        path = tmp_path / "many.csv"
        rows = (f"Match report number {i}: the home side won after a late goal in extra time\n" for i in range(5000))
        path.write_text("text\n" + "".join(rows), encoding="utf-8")  # long enough to outlast the page
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
        page.get_by_role("tab", name="Classify").click()
        choose(page, "Zero-shot: LM likelihood")
        page.get_by_role("tab", name="Batch (CSV)").click()
        page.locator("input[type=file]").first.set_input_files(str(path))
        page.wait_for_timeout(1500)
        page.locator("#classify-batch-run").click()
        page.locator("#classify-batch-status").get_by_text("running").wait_for(timeout=120_000)
        running, deadline = [], time.monotonic() + 30
        while not running and time.monotonic() < deadline:  # the job is in the context's session registry
            running = [job for _, kind, job in ctx.sessions.running() if kind.startswith("batch")]
            time.sleep(0.1)
        assert len(running) == 1
        job = running[0]
        page.close()  # the user closes the tab mid-run
        deadline = time.monotonic() + 60
        while not job.finished and time.monotonic() < deadline:
            time.sleep(0.25)
        assert job.finished and job.stopped, (job.done, job.total, getattr(job, 'error', None))
        assert 0 < job.done < job.total
    finally:
        demo.close()
