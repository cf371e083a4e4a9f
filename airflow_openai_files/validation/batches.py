"""Batch API input files: the endpoint and every line's rules, checked streamed before any request."""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

from airflow_openai_files import limits
from airflow_openai_files.validation.core import (
    BATCH_MAX_LINES,
    DEFAULT_MAX_LINE_BYTES,
    _invalid,
    _lines,
)

if TYPE_CHECKING:
    from airflow_openai_files.exceptions import OpenAIFilesValidationError


def check_batch_endpoint(endpoint: Any) -> str:
    """One of the service's batch endpoints (``/v1/chat/completions``, ``/v1/responses``, ...)."""
    if endpoint not in limits.BATCH_ENDPOINTS:
        raise _invalid(f"Unknown batch endpoint {endpoint!r}: expected one of {', '.join(limits.BATCH_ENDPOINTS)}")
    return str(endpoint)


def check_completion_window(window: Any) -> str:
    """The batch's ``completion_window``: one of the windows the service offers (``24h``)."""
    if window not in limits.BATCH_COMPLETION_WINDOWS:
        raise _invalid(f"completion_window must be one of {', '.join(limits.BATCH_COMPLETION_WINDOWS)}, got {window!r}")
    return str(window)


def check_max_failed(value: Any) -> int | float:
    """``max_failed_requests``: an int >= 0 (requests), or a float in [0, 1] (a fraction of the batch's requests)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(f"max_failed_requests must be an int or a fraction, got {value!r}")
    if (isinstance(value, int) and value < 0) or (isinstance(value, float) and not 0.0 <= value <= 1.0):
        raise _invalid(f"max_failed_requests must be a count >= 0 or a fraction from 0.0 to 1.0, got {value!r}")
    return value


def _batch_line_rule(obj: dict[str, Any], endpoint: str, seen: dict[str, int], model: tuple[str, int] | None) -> str:
    """The first batch-file rule a request breaks, or "" (``model`` is the first line's model and line)."""
    custom_id = obj.get("custom_id")
    if custom_id is None:
        return "'custom_id' is missing"
    if not isinstance(custom_id, str) or not custom_id:
        return f"'custom_id' must be a non-empty string, got {custom_id!r}"
    if custom_id in seen:
        return f"'custom_id' must be unique: {custom_id!r} was first used on line {seen[custom_id]}"
    if obj.get("method") != "POST":
        return f"'method' must be 'POST', got {obj.get('method')!r}"
    if obj.get("url") != endpoint:
        return f"'url' must equal the batch's endpoint {endpoint!r} on every line, got {obj.get('url')!r}"
    body = obj.get("body")
    if not isinstance(body, dict):
        return "'body' must be an object"
    body_model = body.get("model")
    if not isinstance(body_model, str) or not body_model:
        return "'body.model' is missing (every request names its model)"
    if model is not None and body_model != model[0]:
        return f"one model per batch: 'body.model' is {body_model!r}, line {model[1]} uses {model[0]!r}"
    if body.get("stream") is True:
        return "'body.stream' must not be true (a batch cannot stream answers)"
    return ""


def check_batch_file(
    stream: IO[bytes],
    endpoint: str,
    *,
    name: str = "batch input",
    max_lines: int = BATCH_MAX_LINES,
    max_bytes: int = limits.BATCH_FILE_MAX_BYTES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> int:
    """
    Check a Batch API input file for ``endpoint`` before any request; return its number of requests.

    Streamed (one line in memory, plus the set of ``custom_id`` values, at most ``max_lines`` of them).
    The rules, each named in the error with the file and the line: every line a JSON object with a
    unique string ``custom_id``, ``method`` ``POST``, ``url`` equal to ``endpoint``, a ``body`` naming
    one and the same ``model`` on every line, no ``"stream": true``; at most ``max_lines`` requests and
    ``max_bytes`` bytes; ``endpoint`` one of the service's batch endpoints.

    :raises OpenAIFilesValidationError: ``"<name>, line 7: 'url' must equal ..."``.
    """
    check_batch_endpoint(endpoint)
    seen: dict[str, int] = {}
    model: tuple[str, int] | None = None
    size = 0
    line_no = 0
    requests = 0

    def refuse(line: int | None, rule: str) -> OpenAIFilesValidationError:
        return _invalid(f"{name}, line {line}: {rule}" if line is not None else f"{name}: {rule}")

    for raw in _lines(stream, max_line_bytes):
        line_no += 1
        size += len(raw)
        if size > max_bytes:
            raise refuse(line_no, f"the file exceeds the Batch API's limit of {max_bytes} bytes")
        if len(raw) - raw.endswith(b"\n") > max_line_bytes:
            raise refuse(line_no, f"line longer than {max_line_bytes} bytes")
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise refuse(line_no, f"not valid UTF-8 (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise refuse(line_no, f"not valid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise refuse(line_no, f"expected a JSON object, got {type(obj).__name__}")
        requests += 1
        if requests > max_lines:
            raise refuse(line_no, f"a batch holds at most {max_lines} requests")
        rule = _batch_line_rule(obj, endpoint, seen, model)
        if rule:
            raise refuse(line_no, rule)
        seen[obj["custom_id"]] = line_no
        if model is None:
            model = (obj["body"]["model"], line_no)
    if requests == 0:
        raise refuse(None, "the file holds no requests")
    return requests
