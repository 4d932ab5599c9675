"""The OpenAI wire format: request bodies -> :class:`ApiRequest`, results -> response and chunk dicts.

Plain data only (no FastAPI, no torch). Supported: ``model``, ``messages``/``prompt``, ``max_tokens``
(``max_completion_tokens``), ``temperature`` (0 = greedy), ``top_p``, ``stop``, ``seed``, ``n`` = 1, ``stream``
(+ ``stream_options.include_usage``), ``logprobs``/``top_logprobs`` (chat, at most 5) and ``logprobs`` (completions,
an int, at most 5). Fields that would change the answer in ways the workbench cannot honour (tools, n > 1, echo,
best_of, suffix, logit_bias, penalties, JSON response formats) are refused with 400; others (``user``,
``metadata``, ...) are ignored. Logprobs are the model's own distribution (temperature 1, before penalties).
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pipelines.errors import InputError
from pipelines.generation.results import GenerationResult, TokenInfo
from pipelines.generation.settings import GenerationSettings, Mode, StopReason

MAX_TOP_LOGPROBS = 5
REFUSED = ("tools", "tool_choice", "functions", "function_call", "logit_bias", "suffix", "audio", "modalities",
           "prediction", "parallel_tool_calls")
# lone surrogates (JSON "\\ud800" escapes: no UTF-8 text) and control characters other than tab and newlines
# (tokenizers drop them: a prompt of only "\\u0004" gave the model zero tokens and a 500)
UNUSABLE = re.compile("[\ud800-\udfff]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
FINISH = MappingProxyType({StopReason.EOS: "stop", StopReason.STOP_STRING: "stop", StopReason.STOPPED: "stop",
                          StopReason.LENGTH: "length"})


@dataclass
class ApiRequest:
    """One parsed request: what to generate and how to answer."""

    model: str
    mode: str  # chat or completion
    text: str
    settings: GenerationSettings
    system: str = ""
    history: list[dict[str, str]] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    logprobs: bool = False
    top_logprobs: int = 0


def clean_text(text: str) -> str:
    """``text`` with lone UTF-16 surrogates (legal in JSON escapes, not in UTF-8) replaced by U+FFFD and control
    characters (other than tab, CR and LF) removed."""
    return UNUSABLE.sub(lambda m: "" if m.group() < "\ud800" else "\ufffd", text)


def _number(body: dict[str, Any], name: str, low: float, high: float, kind: type = float) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InputError("engines.error.bad_field", name=name, low=low, high=high)
    return kind(value)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name in REFUSED:
        if body.get(name) not in (None, [], {}, ""):
            raise InputError("engines.error.unsupported", name=name)
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise InputError("engines.error.unsupported", name=name)
    if body.get("n") not in (None, 1) or body.get("best_of") not in (None, 1):
        raise InputError("engines.error.only_one_choice")
    if body.get("echo"):
        raise InputError("engines.error.unsupported", name="echo")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        raise InputError("engines.error.unsupported", name="response_format")


def _content(value: Any) -> str:
    """A message's text: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if value is None or isinstance(value, str):
        return clean_text(value or "")
    if isinstance(value, list):
        parts = []
        for part in value:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise InputError("engines.error.text_only")
            parts.append(clean_text(part["text"]))
        return "".join(parts)
    raise InputError("engines.error.text_only")


def _settings(body: dict[str, Any], mode: str, max_tokens_cap: int, default_max: int) -> GenerationSettings:
    max_tokens = _number(body, "max_completion_tokens", 1, 10**9, int) or _number(body, "max_tokens", 1, 10**9, int)
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    seed = _number(body, "seed", -(2**63), 2**63, int)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise InputError("engines.error.bad_stop")
    sampling: dict[str, Any] = {}
    if temperature is not None:
        sampling["do_sample"] = temperature > 0
        if temperature > 0:
            sampling["temperature"] = temperature
    if top_p is not None and top_p > 0:
        sampling["top_p"] = top_p
    return GenerationSettings(
        max_new_tokens=max(1, min(max_tokens or default_max, max_tokens_cap)),
        stop_strings=[clean_text(s) for s in stops if s],
        seed=(seed % 2**31) if seed is not None else -1, mode=mode, **sampling,
    ).validated()


def parse_request(body: Any, mode: str, max_tokens_cap: int, default_max: int = 256) -> ApiRequest:
    """Check and parse a ``/v1/chat/completions`` (``mode="chat"``) or ``/v1/completions`` body."""
    if not isinstance(body, dict):
        raise InputError("engines.error.bad_json")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InputError("engines.error.missing_field", name="model")
    _refuse_unsupported(body)
    settings = _settings(body, mode, max_tokens_cap, default_max)
    stream = bool(body.get("stream"))
    options = body.get("stream_options") or {}
    request = ApiRequest(clean_text(model.strip()), mode, "", settings, stream=stream,
                         include_usage=stream and isinstance(options, dict) and bool(options.get("include_usage")))
    if mode == Mode.CHAT:
        _chat_fields(body, request)
    else:
        _completion_fields(body, request)
    return request


def _chat_fields(body: dict[str, Any], request: ApiRequest) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InputError("engines.error.missing_field", name="messages")
    systems, turns = [], []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            systems.append(_content(message.get("content")))
        elif role in ("user", "assistant"):
            turns.append({"role": role, "content": _content(message.get("content"))})
        else:
            raise InputError("engines.error.bad_role", role=clean_text(str(role)[:40]))
    if not turns or turns[-1]["role"] != "user":
        raise InputError("engines.error.last_not_user")
    request.system = "\n\n".join(s for s in systems if s)
    request.history, request.text = turns[:-1], turns[-1]["content"]
    top = _number(body, "top_logprobs", 0, 20, int)
    request.logprobs = bool(body.get("logprobs"))
    if top is not None and not request.logprobs:
        raise InputError("engines.error.top_logprobs_needs_logprobs")
    if (top or 0) > MAX_TOP_LOGPROBS:
        raise InputError("engines.error.too_many_logprobs", max=MAX_TOP_LOGPROBS)
    request.top_logprobs = top or 0


def _completion_fields(body: dict[str, Any], request: ApiRequest) -> None:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InputError("engines.error.prompt_text")
    request.text = clean_text(prompt)
    value = _number(body, "logprobs", 0, MAX_TOP_LOGPROBS, int)
    request.logprobs = value is not None
    request.top_logprobs = value or 0


# ---- responses ----------------------------------------------------------------------------------------------------
def new_id(mode: str) -> str:
    return ("chatcmpl-" if mode == Mode.CHAT else "cmpl-") + uuid.uuid4().hex[:24]


def _logprob(p: float) -> float:
    return math.log(p) if p > 0 else -9999.0


def visible_tokens(tokens: list[TokenInfo]) -> list[TokenInfo]:
    """The tokens that are part of the answer (special tokens such as the end-of-sequence are left out)."""
    return [t for t in tokens if not t.special]


def _entry(token: str, prob: float) -> dict[str, Any]:
    return {"token": token, "logprob": _logprob(prob), "bytes": list(token.encode("utf-8"))}


def chat_logprobs(tokens: list[TokenInfo], top: int) -> dict[str, Any]:
    content = [{**_entry(t.text, t.prob), "top_logprobs": [_entry(s, p) for s, p in t.top[:top]]} for t in tokens]
    return {"content": content, "refusal": None}


def completion_logprobs(tokens: list[TokenInfo], top: int, offset: int = 0) -> dict[str, Any]:
    offsets, at = [], offset
    for t in tokens:
        offsets.append(at)
        at += len(t.text)
    return {"tokens": [t.text for t in tokens], "token_logprobs": [_logprob(t.prob) for t in tokens],
            "top_logprobs": [{s: _logprob(p) for s, p in t.top[:top]} for t in tokens], "text_offset": offsets}


def usage(result: GenerationResult) -> dict[str, int]:
    done = len(result.tokens)
    prompt = result.prompt_tokens
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def full_response(request: ApiRequest, result: GenerationResult) -> dict[str, Any]:
    """The non-streaming answer."""
    tokens = visible_tokens(result.tokens)
    choice: dict[str, Any] = {"index": 0, "finish_reason": FINISH.get(result.stop_reason, "stop"), "logprobs": None}
    if request.mode == Mode.CHAT:
        choice["message"] = {"role": "assistant", "content": result.text, "refusal": None}
        if request.logprobs:
            choice["logprobs"] = chat_logprobs(tokens, request.top_logprobs)
    else:
        choice["text"] = result.text
        if request.logprobs:
            choice["logprobs"] = completion_logprobs(tokens, request.top_logprobs)
    return {"id": new_id(request.mode), "object": "chat.completion" if request.mode == Mode.CHAT else "text_completion",
            "created": int(time.time()), "model": request.model, "choices": [choice], "usage": usage(result),
            "system_fingerprint": None}


def error_body(message: str, kind: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": clean_text(message), "type": kind, "param": param, "code": code}}
