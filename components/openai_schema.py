"""OpenAPI descriptions of the ``/v1`` request bodies and answers (the routes read the raw body themselves, so
FastAPI cannot infer them): what API clients and fuzzers such as schemathesis see at ``/openapi.json``.

Functions, not module constants, so no mutable dict is shared at module level.
"""

from __future__ import annotations

from typing import Any

ERROR_CODES = (400, 401, 404, 413, 429, 500)


def _error_schema() -> dict[str, Any]:
    detail = {"type": "object", "required": ["message", "type"],
              "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                             "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}
    return {"type": "object", "required": ["error"], "properties": {"error": detail}}


def _common_fields() -> dict[str, Any]:
    stop = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                      {"type": "null"}]}
    return {
        "model": {"type": "string", "minLength": 1},
        "max_tokens": {"type": ["integer", "null"], "minimum": 1},
        "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
        "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "seed": {"type": ["integer", "null"]},
        "stop": stop,
        "n": {"type": ["integer", "null"], "enum": [1, None]},
        "stream": {"type": ["boolean", "null"]},
        "stream_options": {"type": ["object", "null"], "properties": {"include_usage": {"type": "boolean"}}},
        "user": {"type": "string"},
    }


def _chat_body() -> dict[str, Any]:
    part = {"type": "object", "required": ["type", "text"],
            "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}
    content = {"anyOf": [{"type": "string"}, {"type": "array", "items": part}, {"type": "null"}]}
    message = {"type": "object", "required": ["role", "content"],
               "properties": {"role": {"enum": ["system", "developer", "user", "assistant"]}, "content": content}}
    fields = {**_common_fields(), "messages": {"type": "array", "items": message, "minItems": 1},
              "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
              "logprobs": {"type": ["boolean", "null"]},
              "top_logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 5}}
    return {"type": "object", "required": ["model", "messages"], "properties": fields}


def _completion_body() -> dict[str, Any]:
    prompt = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                                "maxItems": 1}]}
    fields = {**_common_fields(), "prompt": prompt,
              "logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 5}}
    return {"type": "object", "required": ["model", "prompt"], "properties": fields}


def _responses() -> dict[int | str, dict[str, Any]]:
    answer = {"content": {"application/json": {"schema": {"type": "object"}},
                          "text/event-stream": {"schema": {"type": "string"}}},
              "description": "The answer (a JSON object, or server-sent events when stream is true)."}
    errors = {code: {"description": "An OpenAI-style error object.",
                     "content": {"application/json": {"schema": _error_schema()}}} for code in ERROR_CODES}
    return {200: answer, **errors}


def body_docs(mode: str) -> dict[str, Any]:
    """``openapi_extra`` and ``responses`` for the route of ``mode`` ("chat" or "completion")."""
    schema = _chat_body() if mode == "chat" else _completion_body()
    extra = {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
    return {"openapi_extra": extra, "responses": _responses()}


def list_docs() -> dict[str, Any]:
    """``responses`` for the model routes (GET: 200, 401, 404)."""
    errors = {code: {"description": "An OpenAI-style error object.",
                     "content": {"application/json": {"schema": _error_schema()}}} for code in (401, 404)}
    return {"responses": errors}
