"""The start-up preparation (ctx.warmup) and the Models tab's handlers, without a server."""

from __future__ import annotations

import threading

from components.models_handlers import ModelsHandlers
from pipelines.config import AppConfig
from pipelines.context import AppContext
from pipelines.messages import Msg
from pipelines.models.warmup import Warmup, WarmupState, WarmupStep


def test_warmup_reports_its_steps_and_a_load_waits_for_it_with_progress(config: AppConfig) -> None:
    release, ran = threading.Event(), []

    def slow(report) -> None:
        report(0.5, "half")
        release.wait(30)
        ran.append("slow")

    steps = [WarmupStep(Msg.of("warmup.step.dequantise", name="x"), slow),
             WarmupStep(Msg.of("warmup.step.precision", name="y"), lambda _r: ran.append("quick"))]
    warmup = Warmup(config, plan=lambda _c: steps)
    assert warmup.status().state == WarmupState.PENDING and not warmup.status().visible
    warmup.start()
    for _ in range(200):  # until the first step has reported its half
        if warmup.status().fraction > 0:
            break
        threading.Event().wait(0.05)
    now = warmup.status()
    assert now.visible and now.state == WarmupState.RUNNING and now.total == 2 and now.done == 0
    assert now.step.key == "warmup.step.dequantise" and 0.2 <= now.fraction <= 0.3
    seen: list[str] = []
    waiter = threading.Thread(target=lambda: warmup.gate(lambda _f, desc: seen.append(desc)))
    waiter.start()
    threading.Event().wait(0.3)
    assert waiter.is_alive()  # a load that needs the models waits ...
    release.set()
    waiter.join(10)
    assert not waiter.is_alive() and warmup.wait(10)
    assert seen and seen[0].msg.key == "models.progress.waiting_warmup"  # ... and says why
    assert "x" in seen[0] and "准备" in seen[0].render("zh-CN")
    assert ran == ["slow", "quick"] and warmup.status().state == WarmupState.DONE and not warmup.status().visible


def test_a_failing_step_is_logged_and_the_rest_still_runs(config: AppConfig) -> None:
    def broken(_report) -> None:
        raise OSError("disk full")

    ran: list[str] = []
    steps = [WarmupStep(Msg.of("warmup.step.dequantise", name="x"), broken),
             WarmupStep(Msg.of("warmup.step.precision", name="y"), lambda _r: ran.append("y"))]
    warmup = Warmup(config, plan=lambda _c: steps).start()
    assert warmup.wait(10)
    assert ran == ["y"] and warmup.status().failures == 1 and warmup.status().state == WarmupState.DONE


def test_a_prepared_install_has_nothing_to_do(ctx: AppContext) -> None:
    """The shared test cache is prepared: the real plan is empty, so no banner ever shows."""
    from pipelines.models.warmup import default_steps

    assert default_steps(ctx.config) == []
    ctx.start_warmup()
    assert ctx.warmup.wait(60) and ctx.warmup.status().state == WarmupState.DONE
    assert not ctx.warmup.status().visible and ctx.manager.loaded() == []  # nothing loaded by preparing


def test_models_tables_are_translated_and_refresh_only_on_change(ctx: AppContext, tiny_root) -> None:
    handlers = ModelsHandlers(ctx)
    version = handlers.refresh()[2]
    assert handlers.refresh(version)[:2] == (None, None)  # nothing changed: nothing to redraw
    status, loaded, embedded = handlers.load(str(tiny_root / "tiny-gpt2"), "auto", "auto", lang="zh-CN")
    assert status.startswith("已加载") and "因果语言模型" in status
    assert list(loaded.columns)[:3] == ["模型", "适配器", "类型"] and loaded.iloc[0, 2].startswith("因果语言模型")
    assert list(embedded.columns) == ["名称", "说明", "软件包", "状态"] and "就绪" in embedded.iloc[:, 3].tolist()
    table, _, newer = handlers.refresh(version, lang="en")
    assert newer != version and table.columns[0] == "Model" and len(table) == 1
    assert handlers.unload(None, lang="en")[0] == "Unloaded 1 model(s)."
