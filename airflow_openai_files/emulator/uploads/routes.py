"""``/uploads`` routes: parse the request, call :class:`~.backend.UploadsBackend`, render."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.forms import receive_form
from airflow_openai_files.emulator.core.parsing import check_known, expires_after_object, read_json, required
from airflow_openai_files.emulator.core.state import EmulatorState
from airflow_openai_files.emulator.uploads.backend import UploadsBackend

CREATE_FIELDS = ("filename", "purpose", "bytes", "mime_type", "expires_after")
COMPLETE_FIELDS = ("part_ids", "md5")
PART_FIELDS = ("data",)


def router(state: EmulatorState) -> APIRouter:
    uploads: UploadsBackend = state.backend("uploads")
    config = state.config
    api = APIRouter(prefix=config.api_prefix + "/uploads")

    @api.post("")
    async def create_upload(request: Request) -> Response:
        body = await read_json(request, allowed=CREATE_FIELDS)
        filename = required(body, "filename", str)
        if body.get("purpose") is None:
            raise errors.missing_key_param("purpose")
        nbytes = required(body, "bytes", int)
        mime_type = required(body, "mime_type", str)
        expires_after = expires_after_object(body.get("expires_after"))
        upload = await run_in_threadpool(
            uploads.create_upload,
            filename=filename,
            purpose=body["purpose"],
            nbytes=nbytes,
            mime_type=mime_type,
            expires_after=expires_after,
        )
        return JSONResponse(upload)

    @api.post("/{upload_id}/parts")
    async def add_part(upload_id: str, request: Request) -> Response:
        await run_in_threadpool(uploads.require_pending_upload, upload_id)
        form = await receive_form(request, state.db, "data", config.max_part_bytes)
        try:
            check_known(form.names, PART_FIELDS)
            if form.too_large:
                raise errors.part_too_large(config.max_part_bytes)
            if form.tmp is None:
                raise errors.missing_key_param("data")
            part = await run_in_threadpool(uploads.add_part, upload_id, form.tmp, form.nbytes)
        finally:
            form.discard()
        return JSONResponse(part)

    @api.post("/{upload_id}/complete")
    async def complete_upload(upload_id: str, request: Request) -> Response:
        body = await read_json(request, allowed=COMPLETE_FIELDS)
        part_ids = required(body, "part_ids", list)
        if not all(isinstance(part_id, str) for part_id in part_ids):
            raise errors.invalid_type("part_ids", ": expected strings")
        md5 = body.get("md5")
        if md5 is not None and not isinstance(md5, str):
            raise errors.invalid_type("md5")
        upload = await run_in_threadpool(uploads.complete_upload, upload_id, part_ids, md5 or None)
        return JSONResponse(upload)

    @api.post("/{upload_id}/cancel")
    def cancel_upload(upload_id: str) -> Response:
        return JSONResponse(uploads.cancel_upload(upload_id))

    return api
