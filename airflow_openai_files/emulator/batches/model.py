"""The deterministic stand-in model that answers each batch request, by endpoint.

Nothing here is a language model: answers are derived from the request so that a test can assert
them (the same request always gets the same answer). Token counts are whitespace-separated words
of every string in the input (at least 1), so ``usage`` figures add up and can be predicted.

:func:`answer` returns ``(status_code, body, usage)``: 200 with the endpoint's object, or 400 with
the service's ``{"error": {...}}`` body for a request the endpoint cannot accept (which the batch
then writes to its error file, as the service does).
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any, NamedTuple

#: Length of the stand-in embeddings when the request names no ``dimensions``.
DEFAULT_EMBEDDING_DIMENSIONS = 16
MAX_EMBEDDING_DIMENSIONS = 3072
MODERATION_CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence")


class Usage(NamedTuple):
    input_tokens: int
    output_tokens: int


class Answer(NamedTuple):
    status_code: int
    body: dict[str, Any]
    usage: Usage


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


def count_tokens(value: Any) -> int:
    """The stand-in tokenizer: words of every string in ``value``, at least 1."""
    return max(1, sum(len(s.split()) for s in _strings(value)))


def estimate_tokens(body: Any) -> int:
    """Tokens a request line enqueues (its input), for the enqueued-token limit."""
    if not isinstance(body, dict):
        return 1
    return count_tokens([body.get(key) for key in ("messages", "input", "prompt", "instructions")])


def _reply(text_source: str) -> str:
    words = text_source.split()[:12]
    return "Emulated answer to: " + " ".join(words) if words else "Emulated answer."


def _error(message: str, param: str | None, code: str | None = None) -> Answer:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return Answer(400, body, Usage(0, 0))


def _missing(name: str) -> Answer:
    return _error(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")


def _last_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict):
            return " ".join(_strings(message.get("content")))
    return ""


def _chat(body: dict[str, Any], ids: str, created: int) -> Answer:
    messages = body.get("messages")
    if messages is None:
        return _missing("messages")
    if not isinstance(messages, list) or not messages:
        return _error("Invalid 'messages': expected a non-empty array.", "messages", "invalid_type")
    text = _reply(_last_text(messages))
    usage = Usage(count_tokens(messages), count_tokens(text))
    return Answer(
        200,
        {
            "id": f"chatcmpl-{ids[:24]}",
            "object": "chat.completion",
            "created": created,
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": sum(usage),
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
            "system_fingerprint": "fp_emulator",
        },
        usage,
    )


def _responses(body: dict[str, Any], ids: str, created: int) -> Answer:
    given = body.get("input")
    if given is None:
        return _missing("input")
    source = given if isinstance(given, str) else _last_text(given) if isinstance(given, list) else ""
    text = _reply(source)
    usage = Usage(count_tokens([given, body.get("instructions")]), count_tokens(text))
    return Answer(
        200,
        {
            "id": f"resp_{ids[:48]}",
            "object": "response",
            "created_at": created,
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "model": body.get("model"),
            "output": [
                {
                    "type": "message",
                    "id": f"msg_{ids[16:64]}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": usage.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": usage.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": sum(usage),
            },
        },
        usage,
    )


def _completions(body: dict[str, Any], ids: str, created: int) -> Answer:
    prompt = body.get("prompt")
    if prompt is None:
        return _missing("prompt")
    text = _reply(" ".join(_strings(prompt)))
    usage = Usage(count_tokens(prompt), count_tokens(text))
    return Answer(
        200,
        {
            "id": f"cmpl-{ids[:24]}",
            "object": "text_completion",
            "created": created,
            "model": body.get("model"),
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": sum(usage),
            },
        },
        usage,
    )


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from a hash of ``text`` (same text, same vector)."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        block = hashlib.sha256(f"{counter}\x1f{text}".encode("utf-8", "surrogatepass")).digest()
        raw.extend(v / 2**31 for v in struct.unpack("<8i", block))
        counter += 1
    vector = raw[:dimensions]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 6) for v in vector]


def _embeddings(body: dict[str, Any], ids: str, created: int) -> Answer:
    given = body.get("input")
    if given is None:
        return _missing("input")
    inputs = given if isinstance(given, list) else [given]
    if not inputs or not all(isinstance(item, (str, list)) for item in inputs):
        return _error("'$.input' is invalid. Please check the API reference.", "input")
    dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
    valid = isinstance(dimensions, int) and not isinstance(dimensions, bool)
    if not valid or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
        return _error(f"Invalid value for 'dimensions': {dimensions!r}.", "dimensions", "invalid_value")
    data = [
        {"object": "embedding", "index": i, "embedding": embedding(" ".join(_strings(item)) or str(item), dimensions)}
        for i, item in enumerate(inputs)
    ]
    usage = Usage(count_tokens(inputs), 0)
    return Answer(
        200,
        {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens},
        },
        usage,
    )


def _moderations(body: dict[str, Any], ids: str, created: int) -> Answer:
    given = body.get("input")
    if given is None:
        return _missing("input")
    inputs = given if isinstance(given, list) else [given]
    results = []
    for item in inputs:
        text = " ".join(_strings(item))
        scores = {name: round(int(_digest(name, text)[:6], 16) / 16**6 * 0.01, 6) for name in MODERATION_CATEGORIES}
        results.append(
            {
                "flagged": False,
                "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
                "category_scores": scores,
            }
        )
    return Answer(
        200,
        {"id": f"modr-{ids[:24]}", "model": body.get("model") or "omni-moderation-latest", "results": results},
        Usage(0, 0),
    )


_HANDLERS = {
    "/v1/chat/completions": _chat,
    "/v1/responses": _responses,
    "/v1/completions": _completions,
    "/v1/embeddings": _embeddings,
    "/v1/moderations": _moderations,
}


def canonical_endpoint(url: Any) -> Any:
    """``/chat/completions`` (Azure OpenAI's documented batch form) as ``/v1/chat/completions``; others unchanged."""
    if isinstance(url, str) and url.startswith("/") and not url.startswith("/v1/"):
        return "/v1" + url
    return url


def answer(endpoint: str, body: dict[str, Any], seed: str, created: int) -> Answer:
    """The stand-in model's answer to one request ``body`` sent to ``endpoint``."""
    handler = _HANDLERS.get(canonical_endpoint(endpoint))
    if handler is None:
        return _error(f"The emulator's stand-in model does not serve {endpoint}.", None, "unsupported_endpoint")
    return handler(body, _digest(seed) + _digest("2", seed), created)
