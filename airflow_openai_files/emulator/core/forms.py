"""The streaming multipart form parser: form fields into small buffers, the one file field
straight into a temporary file in the data directory, never the whole body in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.db import Database
from airflow_openai_files.limits import MiB

MAX_FORM_FIELD = 64 * 1024
_CALLBACKS = (
    "on_part_begin",
    "on_part_data",
    "on_part_end",
    "on_header_field",
    "on_header_value",
    "on_header_end",
    "on_headers_finished",
)


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    #: every part name seen, in order (repeated and file parts included): for strictness checks
    names: list[str] = field(default_factory=list)
    tmp: Path | None = None
    filename: str | None = None
    nbytes: int = 0
    too_large: bool = False

    def discard(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None


class _FormSink:
    """python-multipart callbacks."""

    def __init__(self, db: Database, file_field: str, max_bytes: int) -> None:
        self.db = db
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
        self.form.names.append(self._name)
        if self._name == self.file_field and self.form.tmp is None and not self.form.too_large:
            raw_name = params.get(b"filename", b"upload").decode("utf-8", "replace")
            self.form.filename = raw_name.replace("\\", "/").rsplit("/", 1)[-1] or "upload"
            self.form.tmp = self.db.tmp_path()
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
            if len(self._value) > MAX_FORM_FIELD:
                raise errors.field_too_long(self._name)

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


async def receive_form(request: Any, db: Database, file_field: str, max_bytes: int) -> ReceivedForm:
    """Parse a multipart body as it arrives; the ``file_field`` part goes to a temp file on disk.

    A body that is not ``multipart/form-data`` gets the service's Content-Type answer (HTTP 415).
    """
    raw_type = request.headers.get("content-type") or ""
    content_type, params = parse_options_header(raw_type)
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data":
        raise errors.not_multipart(raw_type)
    if not boundary:
        raise errors.bad_multipart("no boundary in the Content-Type header")
    sink = _FormSink(db, file_field, max_bytes)
    parser = MultipartParser(boundary, {name: getattr(sink, name) for name in _CALLBACKS})  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except Exception as exc:
        sink.close_file()
        sink.form.discard()
        if isinstance(exc, errors.EmulatorError):
            raise
        raise errors.bad_multipart(str(exc)) from exc
    sink.close_file()
    return sink.form
