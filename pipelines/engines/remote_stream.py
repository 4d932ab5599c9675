"""Generation on a remote OpenAI-compatible endpoint, streamed (SSE) into :class:`GenerationResult` snapshots.

Chat goes to ``/v1/chat/completions``, completion to ``/v1/completions``; temperature, top-p, max tokens, stop
strings and seed are passed through; logprobs are asked for, and the token view is built from them when the
server returns them (a note says so when it does not). Stop closes the stream. A 429 answer is retried with
back-off before the stream starts; every failure is one keyed sentence (:mod:`pipelines.engines.remote_errors`).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

from pipelines.engines.remote import Backends, RemoteEndpoint, split_ref
from pipelines.engines.remote_errors import RETRYABLE, http_error, server_message, transport_error
from pipelines.errors import InputError, ModelLoadError, WorkbenchError
from pipelines.generation.results import GenerationResult, TokenInfo
from pipelines.generation.settings import GenerationSettings, Mode, StopReason
from pipelines.limits import Limits
from pipelines.messages import Msg

TOP_LOGPROBS = 5
FINISH = MappingProxyType({"stop": StopReason.EOS, "length": StopReason.LENGTH})


def remote_payload(model: str, text: str, settings: GenerationSettings, system: str,
                   history: list[dict[str, str]] | None, limits: Limits) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) of the request for ``settings.mode`` (auto counts as chat)."""
    s = settings.for_mode(Mode.COMPLETION if settings.mode == Mode.COMPLETION else Mode.CHAT)
    body: dict[str, Any] = {"model": model, "stream": True, "stream_options": {"include_usage": True},
                            "max_tokens": max(1, min(s.max_new_tokens, limits.max_new_tokens))}
    body["temperature"] = float(s.temperature) if s.do_sample else 0.0
    if s.do_sample:
        body["top_p"] = float(s.top_p)
    if s.stop_strings:
        body["stop"] = list(s.stop_strings)
    if s.seed >= 0:
        body["seed"] = int(s.seed)
    if settings.mode == Mode.COMPLETION:
        if not (text or "").strip():
            raise InputError("generate.error.empty_prompt")
        return "/completions", {**body, "prompt": text, "logprobs": TOP_LOGPROBS}
    if not (text or "").strip():
        raise InputError("generate.error.empty_message")
    messages = [{"role": "system", "content": system}] if (system or "").strip() else []
    messages += [{"role": m["role"], "content": str(m.get("content", ""))} for m in history or []
                 if m.get("role") in ("user", "assistant")]
    messages.append({"role": "user", "content": text})
    return "/chat/completions", {**body, "messages": messages, "logprobs": True, "top_logprobs": TOP_LOGPROBS}


def _prob(logprob: Any) -> float:
    try:
        return math.exp(float(logprob))
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def chunk_tokens(choice: dict[str, Any]) -> list[TokenInfo] | None:
    """Tokens with probabilities from a chunk's ``logprobs`` (chat or completion form); None when absent."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    if isinstance(logprobs.get("content"), list):  # chat
        return [TokenInfo(-1, str(item.get("token", "")), _prob(item.get("logprob")),
                          [(str(t.get("token", "")), _prob(t.get("logprob"))) for t in item.get("top_logprobs") or []])
                for item in logprobs["content"] if isinstance(item, dict)]
    tokens = logprobs.get("tokens")
    if isinstance(tokens, list):  # completion
        lps = logprobs.get("token_logprobs") or [None] * len(tokens)
        tops = logprobs.get("top_logprobs") or [None] * len(tokens)
        return [TokenInfo(-1, str(tok), _prob(lp), sorted(((str(k), _prob(v)) for k, v in (top or {}).items()),
                                                         key=lambda kv: -kv[1]))
                for tok, lp, top in zip(tokens, lps, tops, strict=False)]
    return None


def sse_events(lines: Iterator[str], endpoint: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of an SSE stream; raises when it carries an error, is malformed or ends without ``[DONE]``."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            raise ModelLoadError("engines.error.stream_malformed", name=endpoint) from None
        if not isinstance(event, dict):
            raise ModelLoadError("engines.error.stream_malformed", name=endpoint)
        if "error" in event:
            error = event["error"] if isinstance(event["error"], dict) else {"message": event["error"]}
            raise ModelLoadError("engines.error.remote_rejected", name=endpoint,
                                 detail=str(error.get("message", ""))[:200])
        yield event
    raise ModelLoadError("engines.error.stream_truncated", name=endpoint)


class RemoteGenerator:
    """Streams one answer from ``remote:<endpoint>/<model>``."""

    def __init__(self, backends: Backends, limits: Limits) -> None:
        self.backends = backends
        self.limits = limits

    def stream(self, ref: str, text: str, settings: GenerationSettings, *, system: str = "",
               history: list[dict[str, str]] | None = None,
               stop_event: threading.Event | None = None) -> Iterator[GenerationResult]:
        name, model = split_ref(ref)
        endpoint = self.backends.get(name)
        settings = settings.validated()
        self.limits.refuse("".join([system or "", text or "", *(str(m.get("content", "")) for m in history or [])]))
        path, body = remote_payload(model, text, settings, system, history, self.limits)
        stop_event = stop_event or threading.Event()
        mode = Mode.COMPLETION if path == "/completions" else Mode.CHAT
        resolved = settings.for_mode(mode)
        result = GenerationResult(prompt=text, max_new_tokens=body["max_tokens"], device=f"remote:{name}",
                                  precision="remote", seed=resolved.seed, mode=str(mode),
                                  sampling=resolved.sampling_summary())
        started = time.perf_counter()
        try:
            with self.backends.client() as client:
                yield from self._run(client, endpoint, model, path, body, result, stop_event, started)
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - httpx errors become one keyed sentence
            raise transport_error(exc, name) from None

    def _open(self, client: Any, endpoint: RemoteEndpoint, model: str, path: str, body: dict[str, Any],
              stop_event: threading.Event) -> Any:
        """The streaming response; 429/502/503 are retried with back-off (``Retry-After`` honoured, capped)."""
        config = self.backends.config
        for attempt in range(config.retries + 1):
            request = client.build_request("POST", endpoint.url + path, json=body, headers=endpoint.headers())
            response = client.send(request, stream=True)
            if response.status_code == 200:
                return response
            response.read()
            detail = server_message(response)
            response.close()
            if response.status_code not in RETRYABLE or attempt == config.retries:
                raise http_error(response.status_code, endpoint.name, model, detail)
            delay = config.backoff_s * 2**attempt
            retry_after = response.headers.get("retry-after", "")
            if retry_after.replace(".", "", 1).isdigit():
                delay = min(float(retry_after), config.max_retry_after_s)
            if stop_event.wait(delay):
                raise ModelLoadError("engines.error.remote_busy", name=endpoint.name)
        raise ModelLoadError("engines.error.remote_busy", name=endpoint.name)

    def _run(self, client: Any, endpoint: RemoteEndpoint, model: str, path: str, body: dict[str, Any],
             result: GenerationResult, stop_event: threading.Event, started: float) -> Iterator[GenerationResult]:
        response = self._open(client, endpoint, model, path, body, stop_event)
        with_logprobs = False
        finish = None
        pieces = 0
        ended = threading.Event()
        threading.Thread(target=_close_on_stop, args=(response, stop_event, ended), daemon=True,
                         name="lmw-remote-stop").start()
        try:
            for event in _stoppable(sse_events(response.iter_lines(), endpoint.name), stop_event):
                if stop_event.is_set():
                    break
                usage = event.get("usage")
                if isinstance(usage, dict):
                    result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
                    tokens = chunk_tokens(choice)
                    if tokens is not None:
                        with_logprobs = True
                        result.tokens.extend(tokens)
                    result.text += str(piece or "")
                    pieces += bool(piece)
                    finish = choice.get("finish_reason") or finish
                    now = time.perf_counter()
                    if piece and result.ttft_s is None:
                        result.ttft_s = now - started
                    result.total_s = now - started
                    count = len(result.tokens) if with_logprobs else pieces  # without logprobs: chunks
                    if result.ttft_s is not None and result.total_s > result.ttft_s and count > 1:
                        result.decode_tokens_per_s = (count - 1) / (result.total_s - result.ttft_s)
                    if piece:
                        yield result
        finally:
            ended.set()
            response.close()
        result.total_s = time.perf_counter() - started
        result.stop_reason = StopReason.STOPPED if stop_event.is_set() else FINISH.get(finish or "", StopReason.EOS)
        if not with_logprobs:
            result.notes.append(Msg.of("engines.note.no_logprobs", name=endpoint.name))
        result.done = True
        yield result


def _close_on_stop(response: Any, stop_event: threading.Event, ended: threading.Event) -> None:
    """Close the response as soon as Stop is pressed, so a stalled server cannot keep the stream open."""
    while not ended.is_set():
        if stop_event.wait(0.2):
            response.close()
            return


def _stoppable(events: Iterator[dict[str, Any]], stop_event: threading.Event) -> Iterator[dict[str, Any]]:
    """``events`` until they end; once Stop has closed the response, its read error just ends them."""
    try:
        yield from events
    except Exception:
        if not stop_event.is_set():
            raise

