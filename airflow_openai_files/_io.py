"""Upload sources and download destinations: local paths, file objects and ObjectStoragePaths.

:func:`as_location` is the one parser of a location given as a string, used by the hook and the
operators alike: ``scheme://...`` becomes an ``ObjectStoragePath`` (except ``file://``, a local
path); anything else without a scheme is a local path. A store Airflow cannot open (no provider
registered the scheme, or its fsspec package such as ``s3fs`` is missing) is an
``OpenAIFilesValidationError`` that says what to install or attach.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from airflow_openai_files.exceptions import OpenAIFilesValidationError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

COPY_CHUNK = 1024 * 1024
_log = logging.getLogger(__name__)
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


class Destination:
    """
    Where a download lands; it appears only once complete.

    * Local: written to a temporary file beside the destination, then renamed into place. With a
      ``temp_key`` (from :func:`airflow_openai_files._resume.task_key`: dag, run, task, map index) the
      temporary name is the same on every try, so the next try removes what a killed try left; without
      one it is random. Created exclusively (``O_EXCL``, mode 0600) either way.
    * Object stores whose files are fsspec buffered files (s3fs, gcsfs, adlfs): the final key is written
      directly. A multipart upload becomes visible only when it is completed, so the object is already
      atomic; on any failure the upload is aborted (``discard()``), never completed. On S3, multipart
      uploads a killed try left for exactly this key are aborted before writing.
    * Other stores: a temporary object beside the destination, moved into place when complete.
    """

    def __init__(self, destination: Any, *, overwrite: bool, temp_key: str | None = None) -> None:
        destination = as_location(destination)
        self.overwrite = overwrite
        self.temp_key = temp_key
        self.local = as_local_path(destination)
        self.remote: ObjectStoragePath | None = None if self.local is not None else destination
        if self.local is None and not _is_object_storage_path(destination):
            raise OpenAIFilesValidationError(
                f"Download destination must be a path or an ObjectStoragePath, got {type(destination).__name__}"
            )
        self.display = str(self.local if self.local is not None else destination)
        self._tmp: Path | None = None
        self._remote_tmp: ObjectStoragePath | None = None

    def check(self) -> None:
        """Refuse before any request: missing parent, a directory, or an existing file without overwrite."""
        if self.local is not None:
            if not self.local.parent.is_dir():
                raise OpenAIFilesValidationError(
                    f"Download destination {self.display!r}: parent directory does not exist"
                )
            if self.local.is_dir():
                raise OpenAIFilesValidationError(f"Download destination {self.display!r} is a directory")
            if self.local.exists() and not self.overwrite:
                raise OpenAIFilesValidationError(
                    f"Download destination {self.display!r} already exists (pass overwrite=True to replace it)"
                )
        else:
            assert self.remote is not None
            with _store_errors(self.remote):
                exists = self.remote.exists()
            if exists and not self.overwrite:
                raise OpenAIFilesValidationError(
                    f"Download destination {self.display!r} already exists (pass overwrite=True to replace it)"
                )

    def _temp_suffix(self) -> str:
        return self.temp_key[:16] if self.temp_key else uuid.uuid4().hex

    @property
    def local_temp(self) -> Path | None:
        """The task-derived temporary path of a local destination (None without a ``temp_key``)."""
        if self.local is None or not self.temp_key:
            return None
        return self.local.parent / f".{self.local.name}.{self.temp_key[:16]}.part"

    @contextlib.contextmanager
    def open_temp(self) -> Iterator[BinaryIO]:
        """
        A fresh, empty file for one attempt; :meth:`commit` puts it in place, :meth:`discard` drops it.

        For a directly written object store key the write is completed when the block exits without an
        error (the multipart upload is completed), and aborted when it raises.
        """
        self.discard()
        if self.local is not None:
            with self._open_local() as handle:
                yield handle
            return
        assert self.remote is not None
        fs, path = self.remote.fs, self.remote.path
        if _direct_write(fs):
            abort_stale_multipart_uploads(fs, path)
            handle = fs.open(path, "wb")
            try:
                yield handle
            except BaseException:
                _abandon(handle)
                raise
            handle.close()
            return
        self._remote_tmp = self.remote.parent / f".{self.remote.name}.{self._temp_suffix()}.part"
        with contextlib.suppress(FileNotFoundError):
            self._remote_tmp.unlink()
        with self._remote_tmp.open("wb") as handle:
            yield handle

    @contextlib.contextmanager
    def _open_local(self) -> Iterator[BinaryIO]:
        assert self.local is not None
        stable = self.local_temp
        if stable is None:
            # mkstemp creates the file exclusively (O_EXCL) with mode 0600 in the destination's directory.
            fd, name = tempfile.mkstemp(prefix=f".{self.local.name}.", suffix=".part", dir=self.local.parent)
            self._tmp = Path(name)
        else:
            # A killed earlier try of this task left it: it is ours to remove, nobody else uses the name.
            stable.unlink(missing_ok=True)
            try:
                fd = os.open(stable, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
            except FileExistsError:
                raise OpenAIFilesValidationError(
                    f"Download destination {self.display!r}: {stable.name} was created again while this try "
                    "started; another try of the same task is still writing it"
                ) from None
            self._tmp = stable
        with os.fdopen(fd, "wb") as handle:
            yield handle

    def commit(self) -> None:
        """Move the completed temporary file into place (nothing to do for a directly written key)."""
        if self.local is not None:
            assert self._tmp is not None
            os.chmod(self._tmp, 0o644 & ~_umask())
            if self.overwrite:
                os.replace(self._tmp, self.local)
            else:
                # link() fails if the destination appeared meanwhile: never clobber without overwrite.
                try:
                    os.link(self._tmp, self.local)
                except FileExistsError:
                    raise OpenAIFilesValidationError(
                        f"Download destination {self.display!r} appeared during the download; not overwritten"
                    ) from None
                except OSError:
                    if self.local.exists():
                        raise
                    os.rename(self._tmp, self.local)
                self._tmp.unlink(missing_ok=True)
            self._tmp = None
        elif self._remote_tmp is not None:
            assert self.remote is not None
            if self.overwrite and self.remote.exists():
                self.remote.unlink()
            self._remote_tmp.fs.mv(self._remote_tmp.path, self.remote.path)
            self._remote_tmp = None

    def discard(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        if self._remote_tmp is not None:
            with contextlib.suppress(Exception):
                self._remote_tmp.unlink()
            self._remote_tmp = None


#: Stores whose files are fsspec buffered files: written in parts, made visible only on completion.
_DIRECT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az"})


def _protocols(fs: Any) -> set[str]:
    protocol = getattr(fs, "protocol", ())
    return {protocol} if isinstance(protocol, str) else set(protocol or ())


def _direct_write(fs: Any) -> bool:
    """Whether a download to ``fs`` writes its final key directly (atomic on completion, abortable)."""
    return bool(_protocols(fs) & _DIRECT_PROTOCOLS)


def _abandon(handle: Any) -> None:
    """Abort a buffered write without completing it: fsspec's close() would commit what was written."""
    with contextlib.suppress(Exception):
        handle.discard()  # s3fs: abort the multipart upload; nothing was sent for a single-part object
    try:
        handle.closed = True  # fsspec files: close() and __del__ now do nothing
    except AttributeError:
        handle.close()


def abort_stale_multipart_uploads(fs: Any, path: str) -> int:
    """
    Abort the incomplete S3 multipart uploads of exactly the key ``path`` (a killed try's); 0 elsewhere.

    Only for S3 filesystems (s3fs): other stores have no listable pending uploads (GCS and Azure drop
    uncommitted blocks on their own). Best effort: a failure to list or abort is logged, not raised, since
    the write that follows does not depend on it.
    """
    if not ({"s3", "s3a"} & _protocols(fs)) or not hasattr(fs, "call_s3") or not hasattr(fs, "split_path"):
        return 0
    try:
        bucket, key, _ = fs.split_path(path)
        aborted = 0
        listing = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)
        for upload in listing.get("Uploads", []):
            if upload.get("Key") == key:
                fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload["UploadId"])
                aborted += 1
    except Exception as err:
        _log.warning("Could not look for incomplete multipart uploads of %s: %s", path, err)
        return 0
    if aborted:
        _log.info("Aborted %d incomplete multipart upload(s) of %s left by an earlier try", aborted, path)
    return aborted


@functools.cache
def _umask() -> int:
    # Read once: os.umask() can only be read by setting it, which races with other threads.
    current = os.umask(0)
    os.umask(current)
    return current
