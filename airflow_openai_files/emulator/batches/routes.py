"""``/batches`` routes: parse the request strictly, call :class:`~.backend.BatchesBackend`, render."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from airflow_openai_files.emulator.batches.backend import BatchesBackend
from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.parsing import expires_after_object, int_param, read_json, required
from airflow_openai_files.emulator.core.state import EmulatorState
from airflow_openai_files.limits import (
    BATCH_COMPLETION_WINDOWS,
    BATCH_ENDPOINTS,
    METADATA_KEY_MAX,
    METADATA_MAX_PAIRS,
    METADATA_VALUE_MAX,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
)

#: The fields ``POST /batches`` takes; any other is refused.
CREATE_FIELDS = ("input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after")
#: Azure OpenAI documents batch endpoints without ``/v1`` (``/chat/completions``) on its versioned
#: routes; the SDK and its v1 routes send OpenAI's. Azure mode takes both.
AZURE_BATCH_ENDPOINTS = BATCH_ENDPOINTS + tuple(e.removeprefix("/v1") for e in BATCH_ENDPOINTS)


def check_metadata(value: Any) -> dict[str, str] | None:
    """At most 16 pairs, string keys of at most 64 characters, string values of at most 512."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise errors.invalid_type("metadata", ": expected an object")
    if len(value) > METADATA_MAX_PAIRS:
        raise errors.too_many_properties("metadata", METADATA_MAX_PAIRS, len(value))
    for key, item in value.items():
        if len(key) > METADATA_KEY_MAX:
            raise errors.string_too_long("metadata", METADATA_KEY_MAX, len(key))
        if not isinstance(item, str):
            raise errors.invalid_type(f"metadata.{key}", ": expected a string")
        if len(item) > METADATA_VALUE_MAX:
            raise errors.string_too_long(f"metadata.{key}", METADATA_VALUE_MAX, len(item))
    return dict(value)


def router(state: EmulatorState) -> APIRouter:
    batches: BatchesBackend = state.backend("batches")
    api = APIRouter(prefix=state.config.api_prefix + "/batches")
    endpoints = AZURE_BATCH_ENDPOINTS if state.config.is_azure else BATCH_ENDPOINTS

    @api.post("")
    async def create_batch(request: Request) -> Response:
        body = await read_json(request, allowed=CREATE_FIELDS)
        input_file_id = required(body, "input_file_id", str)
        endpoint = required(body, "endpoint", str)
        if endpoint not in endpoints:
            raise errors.unsupported_value("endpoint", endpoint, endpoints)
        window = required(body, "completion_window", str)
        if window not in BATCH_COMPLETION_WINDOWS:
            raise errors.unsupported_value("completion_window", window, BATCH_COMPLETION_WINDOWS)
        metadata = check_metadata(body.get("metadata"))
        try:
            expires_after = expires_after_object(body.get("output_expires_after"))
        except errors.EmulatorError as exc:
            exc.param = exc.param and exc.param.replace("expires_after", "output_expires_after")
            exc.message = exc.message.replace("'expires_after", "'output_expires_after")
            raise
        created = await run_in_threadpool(
            batches.create_batch,
            input_file_id=input_file_id,
            endpoint=endpoint,
            completion_window=window,
            metadata=metadata,
            output_expires_after=expires_after,
        )
        return JSONResponse(created)

    @api.get("")
    def list_batches(request: Request) -> Response:
        query = request.query_params
        limit = int_param(query.get("limit"), "limit", PAGE_LIMIT_DEFAULT, 1, PAGE_LIMIT_MAX)
        data, has_more = batches.list_batches(limit=limit, after=query.get("after"))
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": has_more,
            }
        )

    @api.get("/{batch_id}")
    def retrieve_batch(batch_id: str) -> Response:
        return JSONResponse(batches.get_batch(batch_id))

    @api.post("/{batch_id}/cancel")
    def cancel_batch(batch_id: str) -> Response:
        return JSONResponse(batches.cancel_batch(batch_id))

    return api
