"""Wiring: the registered resources, and the ASGI application built from them.

How to add a resource (e.g. batches, fine-tuning jobs):

1. ``emulator/<resource>/backend.py``: a :class:`~.state.Backend` subclass with ``name`` and
   ``SCHEMA``; it gets the database, clock and configuration from the state (``self.db``,
   ``self.clock``, ``self.config``), other backends with ``self.state.backend("files")``, and
   makes service-owned files with ``files.create_service_file(purpose, filename, content)``.
2. ``emulator/<resource>/routes.py``: ``router(state) -> APIRouter`` under
   ``state.config.api_prefix``; JSON bodies read with :func:`.parsing.read_json` (which refuses
   unknown fields), errors raised from :mod:`.errors`.
3. One line in :data:`RESOURCES` below (backends are built in this order, so a backend comes after
   those it uses).

Azure mode needs nothing more: the context middleware (:mod:`.middleware`) serves every router
registered here on Azure's ``/openai/...?api-version=`` and ``/openai/v1/...`` routes too, with Azure's
auth, request ids and gateway errors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_openai_files.emulator.batches import routes as batches_routes
from airflow_openai_files.emulator.batches.backend import BatchesBackend
from airflow_openai_files.emulator.core import admin, errors
from airflow_openai_files.emulator.core.config import EmulatorConfig
from airflow_openai_files.emulator.core.faults import FaultMiddleware
from airflow_openai_files.emulator.core.middleware import ContextMiddleware
from airflow_openai_files.emulator.core.state import Backend, EmulatorState
from airflow_openai_files.emulator.files import routes as files_routes
from airflow_openai_files.emulator.files.backend import FilesBackend
from airflow_openai_files.emulator.fine_tuning import routes as fine_tuning_routes
from airflow_openai_files.emulator.fine_tuning.backend import FineTuningBackend
from airflow_openai_files.emulator.uploads import routes as uploads_routes
from airflow_openai_files.emulator.uploads.backend import UploadsBackend
from airflow_openai_files.emulator.vector_stores import routes as vector_stores_routes
from airflow_openai_files.emulator.vector_stores.backend import VectorStoresBackend


class Resource(NamedTuple):
    backend: type[Backend]
    router: Callable[[EmulatorState], APIRouter]


RESOURCES: tuple[Resource, ...] = (
    Resource(FilesBackend, files_routes.router),
    Resource(FineTuningBackend, fine_tuning_routes.router),
    Resource(UploadsBackend, uploads_routes.router),
    Resource(BatchesBackend, batches_routes.router),
    Resource(VectorStoresBackend, vector_stores_routes.router),
)


def open_state(data_dir: Path, config: EmulatorConfig) -> EmulatorState:
    """The state of one emulator on ``data_dir``, every resource backend registered."""
    state = EmulatorState.open(data_dir, config)
    try:
        for resource in RESOURCES:
            state.register(resource.backend)
    except BaseException:
        state.close()
        raise
    return state


def create_app(state: EmulatorState) -> Any:
    """The ASGI application: FastAPI with every resource router and the admin router, wrapped in
    the fault and context middlewares."""
    api = FastAPI(title="OpenAI Files API emulator", docs_url=None, redoc_url=None, openapi_url=None)

    @api.exception_handler(errors.EmulatorError)
    async def _emulator_error(request: Request, exc: errors.EmulatorError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if state.config.is_azure and exc.status_code in (404, 405):
            azure = errors.azure_resource_not_found()
            return JSONResponse(azure.body(), status_code=azure.status)
        error = errors.invalid_url(request.method, request.url.path)
        if exc.status_code not in (404, 405):
            error.status = exc.status_code
        return JSONResponse(error.body(), status_code=error.status)

    for resource in RESOURCES:
        api.include_router(resource.router(state))
    api.include_router(admin.router(state))
    return ContextMiddleware(FaultMiddleware(api, state.faults, skip=state.config.is_admin_path), state)
