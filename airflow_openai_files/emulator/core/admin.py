"""The admin API under ``/_emulator`` (no authentication; never part of the emulated service):
faults, reset, the clock, what is stored, the request log, and seeding service-created files.
:class:`~airflow_openai_files.emulator.EmulatorProcess` drives its child through these routes."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.parsing import read_json
from airflow_openai_files.emulator.core.state import EmulatorState


def router(state: EmulatorState) -> APIRouter:
    files = state.backend("files")
    uploads = state.backend("uploads")
    api = APIRouter(prefix=state.config.admin_prefix)

    @api.post("/faults")
    async def add_fault(request: Request) -> Response:
        body = await read_json(
            request, allowed=("method", "path", "times", "status", "headers", "error", "delay", "action")
        )
        try:
            fault = state.faults.add(**body)
        except (TypeError, ValueError) as exc:
            raise errors.bad_admin_request(f"Bad fault: {exc}") from None
        return JSONResponse({"added": fault.__dict__, "pending": state.faults.pending()})

    @api.get("/faults")
    def list_faults() -> Response:
        return JSONResponse(state.faults.pending())

    @api.post("/reset")
    def reset() -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    @api.get("/files")
    def all_files() -> Response:
        return JSONResponse(files.all_files())

    @api.get("/files/{file_id}")
    def one_file(file_id: str) -> Response:
        return JSONResponse({**files.get_file(file_id), "content_path": str(files.content_path(file_id))})

    @api.post("/service_files")
    async def create_service_file(request: Request) -> Response:
        """``{"purpose", "filename", "content_base64"}``: a file as if the service had made it."""
        body: dict[str, Any] = await read_json(request, allowed=("purpose", "filename", "content_base64"))
        try:
            content = base64.b64decode(body.get("content_base64", ""), validate=True)
        except (binascii.Error, TypeError) as exc:
            raise errors.bad_admin_request(f"content_base64: {exc}") from None
        return JSONResponse(
            files.create_service_file(str(body.get("purpose")), str(body.get("filename", "output.jsonl")), content)
        )

    @api.get("/uploads")
    def all_uploads() -> Response:
        return JSONResponse(uploads.all_uploads())

    @api.get("/batches")
    def all_batches() -> Response:
        return JSONResponse(state.backend("batches").all_batches())

    @api.post("/batches/line_faults")
    async def add_line_fault(request: Request) -> Response:
        """``{"status", "custom_ids" | "fraction", "times", "code", "message"}``: fail chosen lines of batches."""
        body = await read_json(request, allowed=("status", "custom_ids", "fraction", "times", "code", "message"))
        line_faults = state.backend("batches").line_faults
        try:
            fault = line_faults.add(**body)
        except (TypeError, ValueError) as exc:
            raise errors.bad_admin_request(f"Bad line fault: {exc}") from None
        return JSONResponse({"added": fault, "pending": line_faults.pending()})

    @api.get("/batches/line_faults")
    def list_line_faults() -> Response:
        return JSONResponse(state.backend("batches").line_faults.pending())

    @api.post("/batches/{batch_id}/expire")
    def expire_batch(batch_id: str) -> Response:
        """End a running batch now as ``expired``: answered lines delivered, the rest ``batch_expired``."""
        from airflow_openai_files.emulator.batches.backend import expire_batch as expire

        return JSONResponse(expire(state.backend("batches"), batch_id))

    @api.get("/requests")
    def request_log() -> Response:
        return JSONResponse([list(entry) for entry in state.requests])

    @api.get("/requests/count")
    def request_count() -> Response:
        return JSONResponse({"count": state.request_count})

    @api.get("/clock")
    def clock() -> Response:
        return JSONResponse({"now": state.clock.now(), "offset": state.clock.offset})

    @api.post("/clock")
    async def advance_clock(request: Request) -> Response:
        body = await read_json(request, allowed=("advance",))
        try:
            state.clock.advance(float(body.get("advance", 0)))
        except (TypeError, ValueError) as exc:
            raise errors.bad_admin_request(f"Bad clock change: {exc}") from None
        return JSONResponse({"now": state.clock.now(), "offset": state.clock.offset})

    @api.get("/fine_tuning/jobs")
    def all_fine_tuning_jobs() -> Response:
        return JSONResponse(state.backend("fine_tuning").all_jobs())

    @api.get("/vector_stores")
    def all_vector_stores() -> Response:
        return JSONResponse(state.backend("vector_stores").all_stores())

    @api.get("/health")
    def health() -> Response:
        return JSONResponse({"ok": True, "data_dir": str(state.data_dir)})

    return api
