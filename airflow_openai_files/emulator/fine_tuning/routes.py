"""``/fine_tuning/jobs`` routes: parse the request, call :class:`~.backend.FineTuningBackend`, render.

Lists are cursor pages ``{"object": "list", "data", "has_more"}`` (checkpoints also carry
``first_id`` / ``last_id``), newest first, continued with ``after=<last id>`` as the official SDK's
auto-pagination does. ``GET /fine_tuning/jobs`` filters on ``metadata[<key>]=<value>`` pairs, or
on ``metadata=null`` for jobs without metadata.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.parsing import int_param, read_json
from airflow_openai_files.emulator.core.state import EmulatorState
from airflow_openai_files.emulator.fine_tuning.backend import FineTuningBackend
from airflow_openai_files.emulator.fine_tuning.params import parse_create
from airflow_openai_files.limits import PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX

from .params import CREATE_FIELDS

_METADATA_KEY = re.compile(r"^metadata\[(.+)\]$")


def router(state: EmulatorState) -> APIRouter:
    jobs: FineTuningBackend = state.backend("fine_tuning")
    api = APIRouter(prefix=state.config.api_prefix + "/fine_tuning/jobs")

    @api.post("")
    async def create_job(request: Request) -> Response:
        body = await read_json(request, allowed=CREATE_FIELDS)
        job = await run_in_threadpool(jobs.create_job, parse_create(body))
        return JSONResponse(job)

    @api.get("")
    def list_jobs(request: Request) -> Response:
        query = request.query_params
        limit = int_param(query.get("limit"), "limit", PAGE_LIMIT_DEFAULT, 1, PAGE_LIMIT_MAX)
        metadata: dict[str, str] = {}
        null_metadata = False
        for name, value in query.multi_items():
            match = _METADATA_KEY.match(name)
            if match:
                metadata[match.group(1)] = value
            elif name == "metadata":
                if value != "null":
                    raise errors.invalid_value(
                        "metadata", "Invalid 'metadata': use metadata[<key>]=<value> or metadata=null."
                    )
                null_metadata = True
        data, has_more = jobs.list_jobs(
            after=query.get("after"), limit=limit, metadata=metadata or None, null_metadata=null_metadata
        )
        return JSONResponse({"object": "list", "data": data, "has_more": has_more})

    @api.get("/{job_id}")
    def retrieve_job(job_id: str) -> Response:
        return JSONResponse(jobs.get_job(job_id))

    @api.post("/{job_id}/cancel")
    def cancel_job(job_id: str) -> Response:
        return JSONResponse(jobs.cancel_job(job_id))

    @api.post("/{job_id}/pause")
    def pause_job(job_id: str) -> Response:
        return JSONResponse(jobs.pause_job(job_id))

    @api.post("/{job_id}/resume")
    def resume_job(job_id: str) -> Response:
        return JSONResponse(jobs.resume_job(job_id))

    @api.get("/{job_id}/events")
    def list_events(job_id: str, request: Request) -> Response:
        query = request.query_params
        limit = int_param(query.get("limit"), "limit", PAGE_LIMIT_DEFAULT, 1, PAGE_LIMIT_MAX)
        data, has_more = jobs.list_events(job_id, after=query.get("after"), limit=limit)
        return JSONResponse({"object": "list", "data": data, "has_more": has_more})

    @api.get("/{job_id}/checkpoints")
    def list_checkpoints(job_id: str, request: Request) -> Response:
        query = request.query_params
        limit = int_param(query.get("limit"), "limit", 10, 1, PAGE_LIMIT_MAX)
        data, has_more = jobs.list_checkpoints(job_id, after=query.get("after"), limit=limit)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": has_more,
            }
        )

    return api
