"""``/files`` routes: parse the request, call :class:`~.backend.FilesBackend`, render the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.config import AZURE_PREFIX
from airflow_openai_files.emulator.core.forms import receive_form
from airflow_openai_files.emulator.core.middleware import SCOPE_PUBLIC_PREFIX
from airflow_openai_files.emulator.core.parsing import check_known, int_param, parse_expires_after
from airflow_openai_files.emulator.core.state import EmulatorState
from airflow_openai_files.emulator.files.backend import FilesBackend
from airflow_openai_files.limits import LIST_LIMIT_MAX

#: The form fields ``POST /files`` takes; any other is refused.
CREATE_FIELDS = ("file", "purpose", "expires_after[anchor]", "expires_after[seconds]")
_DOWNLOAD_CHUNK = 1024 * 1024


def _stream_file(path: Path) -> Any:
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(_DOWNLOAD_CHUNK):
            yield chunk


def router(state: EmulatorState) -> APIRouter:
    files: FilesBackend = state.backend("files")
    config = state.config
    api = APIRouter(prefix=config.api_prefix + "/files")

    @api.post("")
    async def create_file(request: Request) -> Response:
        form = await receive_form(request, state.db, "file", config.max_file_bytes)
        try:
            check_known(form.names, CREATE_FIELDS)
            purpose = files.check_upload_purpose(form.fields.get("purpose"))
            if form.too_large:
                raise errors.file_too_large()
            if form.tmp is None or form.filename is None:
                raise errors.missing_key_param("file")
            files.check_file_kind(purpose, form.filename, form.nbytes, "file")
            expires_after = parse_expires_after(
                form.fields.get("expires_after[anchor]"), form.fields.get("expires_after[seconds]")
            )
            created = await run_in_threadpool(
                files.add_file,
                form.tmp,
                filename=form.filename,
                purpose=purpose,
                nbytes=form.nbytes,
                expires_after=expires_after,
            )
        finally:
            form.discard()
        if config.is_azure:
            # Azure answers 201 Created with the new file's URL (REST reference "Files - Upload").
            prefix = request.scope.get(SCOPE_PUBLIC_PREFIX, AZURE_PREFIX)
            location = f"{str(request.base_url).rstrip('/')}{prefix}/files/{created['id']}"
            return JSONResponse(created, status_code=201, headers={"location": location})
        return JSONResponse(created)

    @api.get("")
    def list_files(request: Request) -> Response:
        query = request.query_params
        limit = int_param(query.get("limit"), "limit", LIST_LIMIT_MAX, 1, LIST_LIMIT_MAX)
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise errors.invalid_value(
                "order", f"Invalid value for 'order': {order[:50]!r}. Supported values are: 'asc' and 'desc'."
            )
        data, has_more = files.list_files(
            purpose=query.get("purpose"), limit=limit, order=order, after=query.get("after")
        )
        # The spec types first_id/last_id as strings, but an empty page has no ids: the emulator
        # sends null there, as the service does (an empty string would be a bogus cursor).
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": has_more,
            }
        )

    @api.get("/{file_id}")
    def retrieve_file(file_id: str) -> Response:
        return JSONResponse(files.get_file(file_id))

    @api.delete("/{file_id}")
    def delete_file(file_id: str) -> Response:
        return JSONResponse(files.delete_file(file_id))

    @api.get("/{file_id}/content")
    def download_file(file_id: str) -> Response:
        path = files.download_path(file_id)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise errors.no_such_file(file_id) from None
        return StreamingResponse(
            _stream_file(path), media_type="application/octet-stream", headers={"content-length": str(size)}
        )

    return api
