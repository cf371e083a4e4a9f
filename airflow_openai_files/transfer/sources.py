"""Upload sources and download destinations: local paths, file objects and ObjectStoragePaths.

:func:`as_location` is the one parser of a location given as a string, used by the hook and the
operators alike: ``scheme://...`` becomes an ``ObjectStoragePath`` (except ``file://``, a local
path); anything else without a scheme is a local path. A store Airflow cannot open (no provider
registered the scheme, or its fsspec package such as ``s3fs`` is missing) is an
``OpenAIFilesValidationError`` that says what to install or attach.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from airflow_openai_files.exceptions import OpenAIFilesValidationError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

COPY_CHUNK = 1024 * 1024
LOCAL_PROTOCOLS = ("file", "local", "")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: fsspec implementations a scheme needs, for the "install ..." hint.
_FS_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "abfs": "adlfs", "az": "adlfs"}


def as_location(value: Any) -> Any:
    """A ``scheme://...`` string (other than ``file://``) as an ObjectStoragePath; other values unchanged."""
    if isinstance(value, str) and _URL_SCHEME.match(value) and not value.startswith("file://"):
        from airflow.sdk import ObjectStoragePath

        with _store_errors(value):
            return ObjectStoragePath(value)
    return value


def _is_object_storage_path(value: object) -> bool:
    # Look on the class: reading ``fs`` on the instance would already try to attach the filesystem.
    cls = type(value)
    return hasattr(cls, "protocol") and hasattr(cls, "fs") and hasattr(cls, "open")


def as_local_path(value: Any) -> Path | None:
    """A local Path for str / PathLike / ``file://`` ObjectStoragePath values, else None."""
    if _is_object_storage_path(value):
        if (value.protocol or "") in LOCAL_PROTOCOLS:
            return Path(value.path)
        return None
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if text.startswith("file://"):
            text = text[len("file://") :]
        return Path(text)
    return None


@dataclass
class UploadSource:
    """A re-openable byte source: ``open()`` yields a fresh stream at its first byte every time."""

    description: str
    name: str | None
    size: int
    open: Callable[[], contextlib.AbstractContextManager[BinaryIO]]
    local_path: Path | None = None
    cleanup: Callable[[], None] | None = None

    def close(self) -> None:
        if self.cleanup is not None:
            self.cleanup()
            self.cleanup = None


def resolve_source(source: Any) -> UploadSource:
    """Check a source exists, is a regular non-empty file, and make it re-openable for retries."""
    source = as_location(source)
    local = as_local_path(source)
    if local is not None:
        if not local.exists():
            raise OpenAIFilesValidationError(f"Upload source {str(local)!r} does not exist")
        if not local.is_file():
            raise OpenAIFilesValidationError(f"Upload source {str(local)!r} is not a regular file")
        size = local.stat().st_size
        return UploadSource(str(local), local.name, size, lambda: open(local, "rb"), local_path=local)
    if _is_object_storage_path(source):
        return _object_storage_source(source)
    if hasattr(source, "read"):
        return _file_object_source(source)
    raise OpenAIFilesValidationError(
        f"Upload source must be a path, an ObjectStoragePath or a binary file object, got {type(source).__name__}"
    )


@contextlib.contextmanager
def _store_errors(path: Any) -> Iterator[None]:
    """Airflow raises a bare ValueError / ImportError for a store it cannot open: say what to do instead."""
    text = str(path)
    scheme = text.split("://", 1)[0] if "://" in text else getattr(path, "protocol", "")
    try:
        yield
    except ImportError as err:
        package = getattr(err, "name", None) or _FS_PACKAGES.get(scheme, f"the fsspec package for {scheme!r}")
        raise OpenAIFilesValidationError(
            f"{text!r}: the {scheme!r} filesystem needs {package!r}, which is not installed ({err}); install it "
            f"(for S3: pip install 'apache-airflow-providers-amazon[s3fs]')"
        ) from None
    except ValueError as err:
        if not any(
            sign in str(err) for sign in ("No filesystem registered", "No registered store", "Unsupported filesystem")
        ):
            raise
        raise OpenAIFilesValidationError(
            f"{text!r}: {err}. Install the provider for that store, or register an fsspec filesystem "
            "with airflow.sdk.io.attach(protocol=..., fs=...)"
        ) from None


def _object_storage_source(path: ObjectStoragePath) -> UploadSource:
    with _store_errors(path):
        exists = path.exists()
        if not exists:
            raise OpenAIFilesValidationError(f"Upload source {str(path)!r} does not exist")
        if not path.is_file():
            raise OpenAIFilesValidationError(f"Upload source {str(path)!r} is not a file")
        size = int(path.stat()["size"])
    return UploadSource(str(path), path.name, size, lambda: path.open("rb"))


@contextlib.contextmanager
def _rewound(stream: BinaryIO, start: int) -> Iterator[BinaryIO]:
    # The caller owns the object: rewind it for each attempt, never close it.
    stream.seek(start)
    yield stream


def _file_object_source(stream: IO[Any]) -> UploadSource:
    if isinstance(stream, io.TextIOBase):
        raise OpenAIFilesValidationError("Upload source must be opened in binary mode ('rb'), not text mode")
    raw_name = getattr(stream, "name", None)
    name = os.path.basename(raw_name) if isinstance(raw_name, str) and raw_name else None
    seekable = False
    with contextlib.suppress(Exception):
        seekable = bool(stream.seekable())
    if seekable:
        start = stream.tell()
        size = stream.seek(0, os.SEEK_END) - start
        stream.seek(start)
        return UploadSource(f"file object {name or '<unnamed>'}", name, size, lambda: _rewound(stream, start))  # type: ignore[arg-type]
    # A stream read once can't be re-sent: spool it to disk so every retry sends the same bytes.
    spool = tempfile.NamedTemporaryFile(prefix="openai-upload-", suffix=".spool", delete=False)  # noqa: SIM115
    try:
        with spool:
            shutil.copyfileobj(stream, spool, COPY_CHUNK)
        size = os.path.getsize(spool.name)
    except BaseException:
        os.unlink(spool.name)
        raise
    spool_path = Path(spool.name)
    return UploadSource(
        f"stream {name or '<unnamed>'}",
        name,
        size,
        lambda: open(spool_path, "rb"),
        local_path=spool_path,
        cleanup=lambda: spool_path.unlink(missing_ok=True),
    )


class BoundedReader:
    """
    Reads exactly ``length`` bytes of ``stream``, from where it stands.

    Gives MultipartEncoder a ``len`` without letting it fstat() the whole file or slurp a BytesIO.
    """

    def __init__(self, stream: BinaryIO, length: int, on_read: Callable[[bytes], None] | None = None) -> None:
        self._stream = stream
        self._remaining = length
        self._on_read = on_read

    @property
    def len(self) -> int:
        return self._remaining

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        want = self._remaining if size is None or size < 0 else min(size, self._remaining)
        chunk = self._stream.read(want)
        if not chunk:
            raise OpenAIFilesValidationError(
                f"Upload source ended {self._remaining} bytes early: it changed while being uploaded"
            )
        self._remaining -= len(chunk)
        if self._on_read is not None:
            self._on_read(chunk)
        return chunk


class BytesReader(BoundedReader):
    def __init__(self, data: bytes | bytearray, on_read: Any) -> None:
        super().__init__(io.BytesIO(data), len(data), on_read)


def read_exact(stream: Any, length: int) -> bytearray:
    buffer = bytearray()
    while len(buffer) < length:
        chunk = stream.read(min(length - len(buffer), COPY_CHUNK))
        if not chunk:
            raise OpenAIFilesValidationError(f"Upload source ended {length - len(buffer)} bytes early")
        buffer += chunk
    return buffer
