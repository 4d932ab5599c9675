"""Task prompts (summaries, fields to JSON, QA) answered by a remote OpenAI-compatible endpoint.

:class:`RemoteTaskLM` is the :class:`~pipelines.generation.task_lm.TaskLM` of ``remote:<endpoint>/<model>``: one
non-streaming ``/v1/chat/completions`` request per prompt at temperature 0; many prompts go out concurrently
(:func:`~pipelines.engines.remote_batch.map_in_flight`, ``EnginesConfig.max_in_flight`` at once). Each request is
retried with exponential back-off on 429, 5xx and a reset connection (``Retry-After`` honoured, capped), and gives
up after ``read_timeout_s`` without an answer. Every failure is one keyed sentence.

Honest approximations, because a remote server does not lend its tokenizer: token counts are estimated (a quarter
token per ASCII character, one per other character -- generous for English, about right for Chinese), and texts
are cut to that estimate; the context is ``EnginesConfig.remote_context`` tokens (servers do not report it); the
repetition penalty of local prompting is not sent (not an OpenAI field); a ``prefill`` (the start a local model is
forced to continue) cannot be sent portably (servers differ on a final assistant message, and asking for it in
words derails small models), so the reply is taken from where the prefill's first character appears (a JSON
object after a preamble) -- see :func:`join_prefill`. Remote models cannot score fixed replies (``label_logliks``
is None): span ranking then uses its other evidence.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from pipelines.engines.remote import backends_of, split_ref
from pipelines.engines.remote_errors import http_error, server_message, transport_error
from pipelines.errors import ModelLoadError, WorkbenchError
from pipelines.generation.task_lm import DEFAULT_REPETITION_PENALTY, ReplyProgress
from pipelines.tasks.lm_prompting import SYSTEM

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def estimate_tokens(text: str) -> int:
    """Approximate token count: ASCII characters / 4 (rounded up) plus one per other character."""
    text = text or ""
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars)


def truncate_estimate(text: str, max_tokens: int) -> tuple[str, bool]:
    """``text`` cut to at most ``max_tokens`` estimated tokens (:func:`estimate_tokens`), and whether it was cut."""
    text = text or ""
    if estimate_tokens(text) <= max_tokens:
        return text, False
    budget, used = max(0, max_tokens) * 4, 0
    for i, ch in enumerate(text):
        used += 1 if ord(ch) < 128 else 4
        if used > budget:
            return text[:i], True
    return text, False


def join_prefill(prefill: str, reply: str) -> str:
    """The reply as if it had started with ``prefill``: kept when it does; from the prefill's first character
    when it holds it later (a JSON object after a preamble); else the prefill followed by the reply."""
    reply = (reply or "").strip()
    start = (prefill or "").strip()
    if not start or reply.startswith(start):
        return reply
    at = reply.find(start[0])
    if at >= 0:
        return reply[at:]
    return (start + " " + reply).strip()


def _is_reset(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError)


class RemoteTaskLM:
    """``remote:<endpoint>/<model>`` answering task prompts (greedy, several in flight)."""

    def __init__(self, ctx: Any, ref: str) -> None:
        self.backends = backends_of(ctx)
        self.name, self.model = split_ref(ref)
        self.endpoint = self.backends.get(self.name)
        self.config = self.backends.config
        self.max_new_tokens_cap = ctx.limits.max_new_tokens
        self.context = int(self.config.remote_context)
        self.label = f"remote:{self.name}/{self.model}"
        self.max_in_flight = max(1, int(self.config.max_in_flight))

    # ---- one request --------------------------------------------------------------------------------
    def _body(self, user: str, system: str, max_new_tokens: int) -> dict[str, Any]:
        messages = [{"role": "system", "content": system}] if (system or "").strip() else []
        messages.append({"role": "user", "content": user})
        return {"model": self.model, "messages": messages, "temperature": 0.0, "stream": False,
                "max_tokens": max(1, min(int(max_new_tokens), self.max_new_tokens_cap))}

    def _post(self, client: Any, body: dict[str, Any], stop: threading.Event | None) -> str:
        """The reply text of one chat completion, retried with back-off on 429/5xx and a reset connection."""
        waiter = stop or threading.Event()
        config = self.config
        for attempt in range(config.retries + 1):
            last = attempt == config.retries
            delay = config.backoff_s * 2**attempt
            try:
                response = client.post(self.endpoint.url + "/chat/completions", json=body,
                                       headers=self.endpoint.headers())
            except Exception as exc:  # noqa: BLE001 - every transport failure becomes one keyed sentence
                if last or not _is_reset(exc):
                    raise transport_error(exc, self.name) from None
                waiter.wait(delay)
                continue
            if response.status_code == 200:
                return self._content(response)
            if response.status_code not in RETRY_STATUS or last:
                raise http_error(response.status_code, self.name, self.model, server_message(response))
            retry_after = response.headers.get("retry-after", "")
            if retry_after.replace(".", "", 1).isdigit():
                delay = min(float(retry_after), config.max_retry_after_s)
            waiter.wait(delay)  # Stop ends the wait early; the retry still runs so the row gets an answer
        raise ModelLoadError("engines.error.remote_busy", name=self.name)

    def _content(self, response: Any) -> str:
        try:
            choice = response.json()["choices"][0]
            content = choice["message"]["content"] if "message" in choice else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelLoadError("engines.error.bad_reply", name=self.name) from None
        return str(content or "")

    def _ask(self, client: Any, user: str, system: str, max_new_tokens: int, prefill: str,
             stop: threading.Event | None = None) -> str:
        reply = self._post(client, self._body(user, system, max_new_tokens), stop)
        return join_prefill(prefill, reply) if prefill else reply.strip()

    # ---- the TaskLM protocol ------------------------------------------------------------------------
    def reply(self, user: str, system: str = SYSTEM, max_new_tokens: int = 128, prefill: str = "",
              repetition_penalty: float = DEFAULT_REPETITION_PENALTY) -> str:
        try:
            with self.backends.client() as client:
                return self._ask(client, user, system, max_new_tokens, prefill)
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a client that cannot be built
            raise transport_error(exc, self.name) from None

    def replies(self, users: Sequence[str], system: str = SYSTEM, max_new_tokens: int = 128, prefill: str = "",
                repetition_penalty: float = DEFAULT_REPETITION_PENALTY, progress: ReplyProgress | None = None,
                stop: threading.Event | None = None) -> list[str]:
        """The replies in input order, ``max_in_flight`` requests at a time (see :func:`map_in_flight`)."""
        from pipelines.engines.remote_batch import map_in_flight

        with self.backends.client() as client:
            return map_in_flight(lambda user: self._ask(client, user, system, max_new_tokens, prefill, stop),
                                 list(users), self.max_in_flight, progress, stop)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        return truncate_estimate(text, max_tokens)

    def label_logliks(self, user: str, labels: Sequence[str], system: str = SYSTEM) -> list[float] | None:
        return None

