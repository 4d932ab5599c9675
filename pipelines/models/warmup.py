"""Start-up preparation in the background: the embedded models and the measured 'auto' decisions.

On a fresh Space the first answer used to take over a minute (de-quantising SmolLM2 from GGUF, then measuring
the fastest CPU precision) with nothing telling the user why. :class:`Warmup` does that work in a worker thread
right after the page is served; the shell shows a banner from :meth:`Warmup.status`, and a model load that needs
an embedded model meanwhile waits in :meth:`Warmup.gate` with a progress message. It lives on the
:class:`~pipelines.context.AppContext` (``ctx.warmup``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pipelines.config import AppConfig
from pipelines.errors import ModelLoadError
from pipelines.keyed_text import KeyedText
from pipelines.messages import Msg
from pipelines.models.embedded import EMBEDDED, EmbeddedModel, ensure_local_folder, is_cached, source_path
from pipelines.sessions import WorkerJob

log = logging.getLogger(__name__)
ProgressFn = Callable[[float, str], None]
WAIT_POLL_S = 0.5


class WarmupState(StrEnum):
    """Where the start-up preparation is."""

    PENDING = "pending"  # not started (or turned off with LMW_WARMUP=0)
    PLANNING = "planning"  # checking what needs doing (quick; no banner)
    RUNNING = "running"  # preparing: the banner shows
    DONE = "done"


@dataclass(frozen=True)
class WarmupStep:
    """One piece of preparation: what the banner says, and the work (reporting a fraction of itself)."""

    label: Msg
    run: Callable[[ProgressFn], None]


@dataclass(frozen=True)
class WarmupStatus:
    """A snapshot for the banner."""

    state: WarmupState
    step: Msg | None = None
    done: int = 0
    total: int = 0
    fraction: float = 0.0
    failures: int = 0

    @property
    def visible(self) -> bool:
        return self.state == WarmupState.RUNNING and self.total > 0


def default_steps(config: AppConfig) -> list[WarmupStep]:
    """What a fresh install still needs: GGUF models to de-quantise, then the generation precision to measure
    (not when llama.cpp answers the chat model: auto precision is a transformers decision), then the batch
    classifier's precision speed-ups on this CPU (pipelines.tasks.precision_memory)."""
    steps: list[WarmupStep] = []
    for spec in EMBEDDED.values():
        try:
            source_path(spec)
        except ModelLoadError as exc:  # not installed: its first use says so; the other models are prepared
            log.warning("Start-up preparation skips %s: %s", spec.name, exc)
            continue
        if spec.fmt == "gguf" and not is_cached(spec, config.cache_dir):
            steps.append(WarmupStep(Msg.of("warmup.step.dequantise", name=spec.name), _dequantise(spec, config)))
    if _precision_needed(config, config.chat_model) and not _llamacpp_answers(config, config.chat_model):
        steps.append(WarmupStep(Msg.of("warmup.step.precision", name=config.chat_model),
                                lambda _report: _measure(config, config.chat_model)))
    if _classify_speed_needed(config):
        steps.append(WarmupStep(Msg.of("warmup.step.classify_speed"),
                                lambda _report: _measure_classify_speed(config)))
    return steps


def _dequantise(spec: EmbeddedModel, config: AppConfig) -> Callable[[ProgressFn], None]:
    """De-quantise the GGUF into the cache for transformers, and re-encode it for llama.cpp (Q4_1 -> Q8_0)."""
    def run(report: ProgressFn) -> None:
        from pipelines.models.gguf_repack import repacked

        ensure_local_folder(spec, config.cache_dir, report)
        repacked(source_path(spec), config.cache_dir)

    return run


def _precision_needed(config: AppConfig, model: str) -> bool:
    """Whether 'auto' precision for the default chat model has not been measured yet (CPU only)."""
    if model not in EMBEDDED:
        return False  # a hub model is measured at its first use, after it has been downloaded
    from pipelines.generation.precision import PrecisionSelector, precision_cache_file
    from pipelines.models.manager import ModelManager

    selector = PrecisionSelector(ModelManager(config), precision_cache_file(config.cache_dir))
    return selector.manager.device == "cpu" and selector.cached(model) is None


def _llamacpp_answers(config: AppConfig, model: str) -> bool:
    """Whether llama.cpp answers ``model`` with the default choices (engine and precision auto, on a CPU): then no
    torch precision is measured at start-up (views that need transformers measure it at their first use)."""
    from types import SimpleNamespace

    from pipelines.generation.engines import Engine, choose_engine
    from pipelines.models.manager import ModelManager

    try:
        where = SimpleNamespace(manager=ModelManager(config), config=config)
        return choose_engine(where, model).engine == Engine.LLAMACPP
    except Exception:  # noqa: BLE001 - unsure: measure as before
        log.exception("Could not tell whether llama.cpp answers %s", model)
        return False


def _classify_speed_needed(config: AppConfig) -> bool:
    """Whether the batch classifier's precision speed-ups are not kept for this CPU yet (on a CPU only)."""
    from pipelines.prepare import classify_speed_needed as needed

    return needed(config)


def _measure_classify_speed(config: AppConfig) -> None:
    from pipelines.prepare import measure_classify_speed as measure

    measure(config)


def _measure(config: AppConfig, model: str) -> None:
    from pipelines.prepare import measure_generation_precision

    measure_generation_precision(config, model)


class Warmup(WorkerJob):
    """The background preparation job; :meth:`status` for the banner, :meth:`gate` for loads that need it."""

    thread_name = "lmw-warmup"

    def __init__(self, config: AppConfig, plan: Callable[[AppConfig], list[WarmupStep]] = default_steps) -> None:
        super().__init__()
        self.config = config
        self.plan = plan
        self.state = WarmupState.PENDING
        self.steps: tuple[WarmupStep, ...] = ()
        self.current = 0
        self.step_fraction = 0.0
        self.failures = 0
        self._changed = threading.Condition()

    def work(self) -> None:
        self._set(state=WarmupState.PLANNING)
        try:
            steps = tuple(self.plan(self.config))
        except Exception:  # noqa: BLE001 - a broken install shows up at first use; the app keeps serving
            log.exception("Planning the start-up preparation failed")
            steps = ()
        self._set(steps=steps, state=WarmupState.RUNNING if steps else WarmupState.DONE)
        for index, step in enumerate(steps):
            if self.stopped:
                break
            self._set(current=index, step_fraction=0.0)
            started = time.perf_counter()
            try:
                step.run(lambda fraction, _desc: self._set(step_fraction=max(0.0, min(1.0, fraction))))
                log.info("Start-up preparation: %s in %.1f s", step.label, time.perf_counter() - started)
            except Exception:  # noqa: BLE001 - the step is retried at first use, with its error shown then
                log.exception("Start-up preparation failed: %s", step.label)
                self._set(failures=self.failures + 1)

    def cleanup(self) -> None:
        self._set(state=WarmupState.DONE, current=len(self.steps))

    def _set(self, **changes: object) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(self, name, value)
            self._changed.notify_all()

    def status(self) -> WarmupStatus:
        with self._changed:
            total = len(self.steps)
            step = self.steps[self.current].label if self.current < total else None
            fraction = (self.current + self.step_fraction) / total if total else 1.0
            return WarmupStatus(self.state, step, min(self.current, total), total, fraction, self.failures)

    @property
    def busy(self) -> bool:
        """Preparing (or about to): a load of an embedded model should wait."""
        return self.state in (WarmupState.PLANNING, WarmupState.RUNNING) and self.running

    def gate(self, progress: ProgressFn | None = None, timeout: float | None = None) -> bool:
        """Block until the preparation is done, reporting what it is doing; True when it is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.busy:
            now = self.status()
            if progress is not None and now.step is not None:
                progress(now.fraction, KeyedText(Msg.of("models.progress.waiting_warmup", step=now.step)))
            with self._changed:
                self._changed.wait(WAIT_POLL_S)
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True
