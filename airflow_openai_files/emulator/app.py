"""The FastAPI application of the emulator: the Files and Uploads API under ``/v1`` plus an
unauthenticated admin API under ``/_emulator``.

Request bodies are never held in memory: multipart uploads are parsed incrementally with
python-multipart's callback parser and written straight to a temporary file in the data
directory; downloads are streamed from disk in 1 MiB chunks.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_openai_files.emulator.faults import FaultMiddleware, FaultRegistry
from airflow_openai_files.emulator.store import EmulatorError, Store
from airflow_openai_files.validation import PURPOSES

MiB = 1024 * 1024
# The service documents "512 MB" per file; the emulator reads MB as MiB (536870912 bytes), so it
# never refuses a file the service accepts. The same goes for the other limits below.
MAX_FILE_BYTES = 512 * MiB
MAX_BATCH_BYTES = 200 * MiB
MAX_PART_BYTES = 64 * MiB
MAX_UPLOAD_BYTES = 8 * 1024 * MiB
EXPIRES_MIN_SECONDS, EXPIRES_MAX_SECONDS = 3600, 2592000
LIST_LIMIT_MAX = 10_000
_MAX_FORM_FIELD = 64 * 1024
_DOWNLOAD_CHUNK = MiB
REQUEST_LOG_SIZE = 100_000

_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using"
    " Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username)"
    " if you're accessing the API from your browser and are prompted for a username and password."
    " You can obtain an API key from https://platform.openai.com/account/api-keys."
)
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your"
    " HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid"
    " JSON.)"
)


@dataclass
class EmulatorConfig:
    api_keys: tuple[str, ...] = ()
    max_file_bytes: int = MAX_FILE_BYTES
    max_batch_bytes: int = MAX_BATCH_BYTES
    max_part_bytes: int = MAX_PART_BYTES
    max_upload_bytes: int = MAX_UPLOAD_BYTES


@dataclass
class EmulatorState:
    store: Store
    config: EmulatorConfig
    faults: FaultRegistry = field(default_factory=FaultRegistry)
    requests: deque[tuple[str, str, int]] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))

    def reset(self) -> None:
        self.faults.clear()
        self.requests.clear()
        self.store.reset()


def mask_key(key: str) -> str:
    """``sk-ab***wxyz``: enough to recognise a key, never the whole of it."""
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:5]}{'*' * min(len(key) - 9, 20)}{key[-4:]}"


def _auth_error(authorization: str | None, api_keys: tuple[str, ...]) -> EmulatorError | None:
    scheme, _, key = (authorization or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return EmulatorError(401, _MISSING_KEY)
    if api_keys and key not in api_keys:
        return EmulatorError(
            401,
            f"Incorrect API key provided: {mask_key(key)}. You can find your API key at"
            " https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
    return None


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class ContextMiddleware:
    """Outermost layer: auth for ``/v1``, ``x-request-id`` and ``openai-processing-ms`` on every
    answer, the request log, and draining an unread request body before answering (so a client
    still sending a large body sees the error instead of a broken pipe)."""

    def __init__(self, app: Any, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # uvicorn's request cycle, which owns the transport: used by connection faults.
        scope["emulator.cycle"] = getattr(receive, "__self__", None)
        seen = {"body_done": False, "logged": False}
        path: str = scope["path"]

        def log(status: int) -> None:
            # Logged when the answer starts (or the connection is dropped), before the client can
            # see anything; status 0: the connection was closed without an answer.
            if not seen["logged"] and not path.startswith("/_emulator"):
                self.state.requests.append((scope["method"], path, status))
            seen["logged"] = True

        scope["emulator.log_no_answer"] = lambda: log(0)

        async def tracked_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                seen["body_done"] = True
            return message

        async def stamped_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                while not seen["body_done"]:
                    await tracked_receive()
                elapsed_ms = int((time.perf_counter() - started) * 1000)
                headers = [
                    *message.get("headers", []),
                    (b"x-request-id", f"req_{uuid.uuid4().hex}".encode()),
                    (b"openai-processing-ms", str(elapsed_ms).encode()),
                    (b"openai-version", b"2020-10-01"),
                ]
                message = {**message, "headers": headers}
                log(message["status"])
            await send(message)

        if path == "/v1" or path.startswith("/v1/"):
            headers = dict(scope["headers"])
            raw = headers.get(b"authorization")
            error = _auth_error(raw.decode("latin-1") if raw else None, self.state.config.api_keys)
            if error is not None:
                body = _json_bytes(error.body())
                await stamped_send(
                    {
                        "type": "http.response.start",
                        "status": error.status,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await stamped_send({"type": "http.response.body", "body": body})
                return
        try:
            await self.app(scope, tracked_receive, stamped_send)
        finally:
            log(0)


# ---- request parsing helpers ----------------------------------------------------------------------
@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    tmp: Path | None = None
    filename: str | None = None
    nbytes: int = 0
    too_large: bool = False

    def discard(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None


class _FormSink:
    """python-multipart callbacks: form fields into small buffers, the file field into a file."""

    def __init__(self, store: Store, file_field: str, max_bytes: int) -> None:
        self.store = store
        self.file_field = file_field
        self.max_bytes = max_bytes
        self.form = ReceivedForm()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._value: bytearray | None = None
        self._out: IO[bytes] | None = None
        self._is_file = False

    def on_part_begin(self) -> None:
        self._headers = {}
        self._value = None
        self._is_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if self._name == self.file_field and self.form.tmp is None and not self.form.too_large:
            raw_name = params.get(b"filename", b"upload").decode("utf-8", "replace")
            self.form.filename = raw_name.replace("\\", "/").rsplit("/", 1)[-1] or "upload"
            self.form.tmp = self.store.tmp_path()
            self._out = open(self.form.tmp, "wb", buffering=MiB)  # noqa: SIM115 - closed in on_part_end
            self._is_file = True
        else:
            self._value = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.form.nbytes += end - start
            if self.form.nbytes > self.max_bytes:
                self.form.too_large = True
                self.close_file()
                self.form.discard()
            elif self._out is not None:
                self._out.write(data[start:end])
        elif self._value is not None:
            self._value += data[start:end]
            if len(self._value) > _MAX_FORM_FIELD:
                raise EmulatorError(400, f"Form field '{self._name}' is too long.", param=self._name)

    def on_part_end(self) -> None:
        if self._is_file:
            self.close_file()
        elif self._value is not None:
            self.form.fields.setdefault(self._name, self._value.decode("utf-8", "replace"))
        self._is_file = False
        self._value = None

    def close_file(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


async def receive_form(request: Request, store: Store, file_field: str, max_bytes: int) -> ReceivedForm:
    """Parse a multipart body as it arrives; the ``file_field`` part goes to a temp file on disk."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise EmulatorError(
            400, "Invalid Content-Type header, expected multipart/form-data with a boundary.", param=None
        )
    sink = _FormSink(store, file_field, max_bytes)
    callbacks = {
        name: getattr(sink, name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except Exception as exc:
        sink.close_file()
        sink.form.discard()
        if isinstance(exc, EmulatorError):
            raise
        raise EmulatorError(400, f"Could not parse multipart form: {exc}") from exc
    sink.close_file()
    return sink.form


def parse_expires_after(anchor: Any, seconds: Any, prefix: str) -> int | None:
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise EmulatorError(
            400, f"Invalid value for '{prefix}[anchor]': expected 'created_at'.", param=f"{prefix}[anchor]"
        )
    try:
        value = int(seconds)
        if isinstance(seconds, bool) or float(seconds) != value:
            raise ValueError
    except (TypeError, ValueError):
        raise EmulatorError(
            400, f"Invalid '{prefix}[seconds]': expected an integer.", param=f"{prefix}[seconds]"
        ) from None
    if not EXPIRES_MIN_SECONDS <= value <= EXPIRES_MAX_SECONDS:
        raise EmulatorError(
            400,
            f"Invalid '{prefix}[seconds]': must be between {EXPIRES_MIN_SECONDS} and {EXPIRES_MAX_SECONDS}"
            f" seconds, got {value}.",
            param=f"{prefix}[seconds]",
        )
    return value


def check_purpose(purpose: Any) -> str:
    if purpose is None:
        raise EmulatorError(
            400, "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
        )
    if purpose not in PURPOSES:
        raise EmulatorError(
            400,
            f"Invalid value for 'purpose': {str(purpose)[:100]!r}. Supported values are: "
            + ", ".join(repr(p) for p in PURPOSES)
            + ".",
            param="purpose",
            code="invalid_value",
        )
    return str(purpose)


def check_file_kind(purpose: str, filename: str, nbytes: int, config: EmulatorConfig, param: str) -> None:
    """The ``.jsonl`` rule of fine-tune and batch files and the batch size cap."""
    api = {"fine-tune": "Fine-Tuning", "batch": "Batch"}.get(purpose)
    if api is not None and not filename.lower().endswith(".jsonl"):
        raise EmulatorError(400, f"Invalid file format for {api} API. Must be .jsonl", param=param)
    if purpose == "batch" and nbytes > config.max_batch_bytes:
        raise EmulatorError(
            400,
            f"File is too large for the Batch API: at most {config.max_batch_bytes} bytes.",
            param=param,
        )


def _int_param(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise EmulatorError(
            400, f"Invalid '{name}': expected an integer, got {value[:50]!r}.", param=name, code="invalid_type"
        ) from None
    if number < low:
        raise EmulatorError(
            400,
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, but got {number} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if number > high:
        raise EmulatorError(
            400,
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, but got {number} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return number


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise EmulatorError(400, _BAD_JSON) from None
    if not isinstance(body, dict):
        raise EmulatorError(400, _BAD_JSON)
    return body


def _required(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in body or body[name] is None:
        raise EmulatorError(
            400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
        )
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise EmulatorError(400, f"Invalid type for '{name}'.", param=name, code="invalid_type")
    return value


def _stream_file(path: Path) -> Any:
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(_DOWNLOAD_CHUNK):
            yield chunk


def create_app(state: EmulatorState) -> Any:
    """Build the ASGI application (FastAPI wrapped in the fault and context middlewares)."""
    store, config = state.store, state.config
    api = FastAPI(title="OpenAI Files API emulator", docs_url=None, redoc_url=None, openapi_url=None)

    @api.exception_handler(EmulatorError)
    async def _emulator_error(request: Request, exc: EmulatorError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        status = 404 if exc.status_code in (404, 405) else exc.status_code
        error = EmulatorError(status, f"Invalid URL ({request.method} {request.url.path})")
        return JSONResponse(error.body(), status_code=status)

    # ---- Files ----------------------------------------------------------------------------------
    @api.post("/v1/files")
    async def create_file(request: Request) -> Response:
        form = await receive_form(request, store, "file", config.max_file_bytes)
        try:
            purpose = check_purpose(form.fields.get("purpose"))
            if form.too_large:
                raise EmulatorError(400, "File is too large.", param="file")
            if form.tmp is None or form.filename is None:
                raise EmulatorError(
                    400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
                )
            check_file_kind(purpose, form.filename, form.nbytes, config, "file")
            expires_after = parse_expires_after(
                form.fields.get("expires_after[anchor]"),
                form.fields.get("expires_after[seconds]"),
                "expires_after",
            )
            created = await run_in_threadpool(
                store.add_file,
                form.tmp,
                filename=form.filename,
                purpose=purpose,
                nbytes=form.nbytes,
                expires_after=expires_after,
            )
        finally:
            form.discard()
        return JSONResponse(created)

    @api.get("/v1/files")
    def list_files(request: Request) -> Response:
        query = request.query_params
        limit = _int_param(query.get("limit"), "limit", LIST_LIMIT_MAX, 1, LIST_LIMIT_MAX)
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise EmulatorError(
                400,
                f"Invalid value for 'order': {order[:50]!r}. Supported values are: 'asc' and 'desc'.",
                param="order",
                code="invalid_value",
            )
        data, has_more = store.list_files(
            purpose=query.get("purpose"), limit=limit, order=order, after=query.get("after")
        )
        # The spec types first_id/last_id as strings, but an empty page has no ids: the emulator
        # sends null there, as the service does (an empty string would be a bogus cursor). The
        # SDK's cursor page paginates by data[-1].id and has_more, so both are fine for it.
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": has_more,
            }
        )

    @api.get("/v1/files/{file_id}")
    def retrieve_file(file_id: str) -> Response:
        return JSONResponse(store.get_file(file_id))

    @api.delete("/v1/files/{file_id}")
    def delete_file(file_id: str) -> Response:
        return JSONResponse(store.delete_file(file_id))

    @api.get("/v1/files/{file_id}/content")
    def download_file(file_id: str) -> Response:
        path = store.content_path(file_id)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise EmulatorError(404, f"No such File object: {file_id}", param="id") from None
        return StreamingResponse(
            _stream_file(path),
            media_type="application/octet-stream",
            headers={"content-length": str(size)},
        )

    # ---- Uploads --------------------------------------------------------------------------------
    @api.post("/v1/uploads")
    async def create_upload(request: Request) -> Response:
        body = await _json_body(request)
        filename = _required(body, "filename", str)
        purpose = check_purpose(body.get("purpose"))
        nbytes = _required(body, "bytes", int)
        mime_type = _required(body, "mime_type", str)
        if not 0 <= nbytes <= config.max_upload_bytes:
            raise EmulatorError(
                400,
                f"Invalid 'bytes': an Upload holds between 0 and {config.max_upload_bytes} bytes.",
                param="bytes",
            )
        check_file_kind(purpose, filename, nbytes, config, "bytes" if purpose == "batch" else "filename")
        expires = body.get("expires_after")
        if expires is not None and not isinstance(expires, dict):
            raise EmulatorError(400, "Invalid type for 'expires_after'.", param="expires_after")
        expires_after = (
            parse_expires_after(expires.get("anchor"), expires.get("seconds"), "expires_after")
            if expires is not None
            else None
        )
        upload = await run_in_threadpool(
            store.create_upload,
            filename=filename,
            purpose=purpose,
            nbytes=nbytes,
            mime_type=mime_type,
            expires_after=expires_after,
        )
        return JSONResponse(upload)

    @api.post("/v1/uploads/{upload_id}/parts")
    async def add_part(upload_id: str, request: Request) -> Response:
        await run_in_threadpool(store.require_pending_upload, upload_id)
        form = await receive_form(request, store, "data", config.max_part_bytes)
        try:
            if form.too_large:
                raise EmulatorError(400, f"Part is too large: at most {config.max_part_bytes} bytes.", param="data")
            if form.tmp is None:
                raise EmulatorError(
                    400, "Missing required parameter: 'data'.", param="data", code="missing_required_parameter"
                )
            part = await run_in_threadpool(store.add_part, upload_id, form.tmp, form.nbytes)
        finally:
            form.discard()
        return JSONResponse(part)

    @api.post("/v1/uploads/{upload_id}/complete")
    async def complete_upload(upload_id: str, request: Request) -> Response:
        body = await _json_body(request)
        part_ids = _required(body, "part_ids", list)
        if not all(isinstance(part_id, str) for part_id in part_ids):
            raise EmulatorError(400, "Invalid type for 'part_ids': expected strings.", param="part_ids")
        md5 = body.get("md5")
        if md5 is not None and not isinstance(md5, str):
            raise EmulatorError(400, "Invalid type for 'md5'.", param="md5")
        upload = await run_in_threadpool(store.complete_upload, upload_id, part_ids, md5 or None)
        return JSONResponse(upload)

    @api.post("/v1/uploads/{upload_id}/cancel")
    def cancel_upload(upload_id: str) -> Response:
        return JSONResponse(store.cancel_upload(upload_id))

    # ---- admin ----------------------------------------------------------------------------------
    @api.post("/_emulator/faults")
    async def add_fault(request: Request) -> Response:
        body = await request.json()
        try:
            fault = state.faults.add(**body)
        except (TypeError, ValueError) as exc:
            raise EmulatorError(400, f"Bad fault: {exc}") from None
        return JSONResponse({"added": fault.__dict__, "pending": state.faults.pending()})

    @api.get("/_emulator/faults")
    def list_faults() -> Response:
        return JSONResponse(state.faults.pending())

    @api.post("/_emulator/reset")
    def reset() -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    @api.get("/_emulator/files")
    def admin_files() -> Response:
        return JSONResponse(store.all_files())

    @api.get("/_emulator/requests")
    def admin_requests() -> Response:
        return JSONResponse([list(entry) for entry in state.requests])

    @api.post("/_emulator/clock")
    async def advance_clock(request: Request) -> Response:
        body = await request.json()
        store.advance_clock(float(body.get("advance", 0)))
        return JSONResponse({"now": store.now()})

    @api.get("/_emulator/health")
    def health() -> Response:
        return JSONResponse({"ok": True, "data_dir": str(store.data_dir)})

    return ContextMiddleware(FaultMiddleware(api, state.faults), state)
