"""The validation a batch goes through in ``validating``: one streamed pass over the input file.

The service reports a malformed input as a ``failed`` batch whose ``errors.data`` lists
``{code, line, message, param}`` (not as an HTTP error at creation). Codes reported for the service:
``invalid_json_line`` (message "This line is not parseable as valid JSON."), ``duplicate_custom_id``,
``url_mismatch``, ``model_mismatch``, ``empty_file``, ``too_many_tasks``; the others below
(``missing_required_parameter``, ``invalid_method``, ``invalid_request``, ``streaming_unsupported``)
and the wording of every message but the first are the emulator's (docs/fidelity.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_openai_files.emulator.batches.model import canonical_endpoint, estimate_tokens
from airflow_openai_files.limits import BATCH_MAX_LINES

#: At most this many line errors are reported in ``errors.data`` (the rest are counted, not listed).
MAX_REPORTED_ERRORS = 100
_READ_BUFFER = 1024 * 1024


@dataclass
class InputCheck:
    """What validation learnt: request count, the batch's model, enqueued tokens, and errors."""

    total: int = 0
    model: str | None = None
    tokens: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, code: str, message: str, line: int | None = None, param: str | None = None) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"code": code, "line": line, "message": message, "param": param})


def _same_url(url: Any, endpoint: str, azure: bool) -> bool:
    """Azure OpenAI documents ``/chat/completions`` where OpenAI has ``/v1/chat/completions``: both match there."""
    return url == endpoint or (azure and canonical_endpoint(url) == canonical_endpoint(endpoint))


def _check_line(obj: Any, number: int, endpoint: str, seen: set[str], result: InputCheck, azure: bool) -> None:
    if not isinstance(obj, dict):
        result.add("invalid_request", "Each line must be a JSON object.", number)
        return
    custom_id = obj.get("custom_id")
    if custom_id is None:
        result.add("missing_required_parameter", "Missing required parameter: 'custom_id'.", number, "custom_id")
    elif not isinstance(custom_id, str):
        result.add("invalid_type", "Invalid type for 'custom_id': expected a string.", number, "custom_id")
    elif custom_id in seen:
        result.add(
            "duplicate_custom_id",
            "The custom_id for this request is a duplicate of another request. The custom_id parameter must be"
            " unique for each request in a batch.",
            number,
            "custom_id",
        )
    else:
        seen.add(custom_id)
    if obj.get("method") != "POST":
        result.add("invalid_method", "The method for this request must be POST.", number, "method")
    if not _same_url(obj.get("url"), endpoint, azure):
        result.add(
            "url_mismatch",
            f"The URL provided for this request does not match the batch endpoint {endpoint}.",
            number,
            "url",
        )
    body = obj.get("body")
    if not isinstance(body, dict):
        result.add("invalid_request", "Invalid 'body': expected an object.", number, "body")
        return
    if body.get("stream") is True:
        result.add("streaming_unsupported", "Streaming is not supported in the Batch API.", number, "body.stream")
    model = body.get("model")
    if model is None:
        if canonical_endpoint(endpoint) != "/v1/moderations":
            result.add("missing_required_parameter", "Missing required parameter: 'body.model'.", number, "body.model")
    elif not isinstance(model, str):
        result.add("invalid_type", "Invalid type for 'body.model': expected a string.", number, "body.model")
    elif result.model is None:
        result.model = model
    elif model != result.model:
        result.add(
            "model_mismatch",
            f"The model for this request ({model[:100]}) does not match the model of the batch ({result.model}):"
            " a batch uses one model.",
            number,
            "body.model",
        )
    result.tokens += estimate_tokens(body)


def check_input(path: Path, endpoint: str, max_requests: int = BATCH_MAX_LINES, *, azure: bool = False) -> InputCheck:
    """Stream ``path`` once; constant memory apart from the set of ``custom_id`` values.

    ``azure``: line URLs may use Azure's form without ``/v1`` (``/chat/completions``) or OpenAI's.
    """
    result = InputCheck()
    seen: set[str] = set()
    with open(path, "rb", buffering=_READ_BUFFER) as stream:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            result.total += 1
            try:
                obj = json.loads(raw)
            except ValueError:
                result.add("invalid_json_line", "This line is not parseable as valid JSON.", number)
                continue
            _check_line(obj, number, endpoint, seen, result, azure)
    if result.total == 0:
        result.add("empty_file", "The batch input file is empty.")
    elif result.total > max_requests:
        result.add(
            "too_many_tasks",
            f"The batch input file has {result.total:,} requests; a batch holds at most {max_requests:,}.",
        )
    return result
