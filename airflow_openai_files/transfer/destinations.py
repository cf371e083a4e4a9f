"""Download destinations: where a download lands, and how a killed or failed try leaves nothing behind.

Split from :mod:`airflow_openai_files.transfer.sources` (which still exports :class:`Destination`): locations are
parsed there, by the one parser the hook and the operators share.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.transfer.sources import _is_object_storage_path, _store_errors, as_local_path, as_location

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

_log = logging.getLogger(__name__)


class Destination:
    """
    Where a download lands; it appears only once complete.

    * Local: written to a temporary file beside the destination, then renamed into place. With a
      ``temp_key`` (from :func:`airflow_openai_files.resume.task_key`: dag, run, task, map index) the
      temporary name is the same on every try, so the next try removes what a killed try left; without
      one it is random. Created exclusively (``O_EXCL``, mode 0600) either way.
    * Object stores whose files are fsspec buffered files (s3fs, gcsfs, adlfs): the final key is written
      directly. A multipart upload becomes visible only when it is completed, so the object is already
      atomic; on any failure the upload is aborted (``discard()``), never completed. On S3, multipart
      uploads a killed try left for exactly this key are aborted before writing.
    * Other stores: a temporary object beside the destination, moved into place when complete.
    """

    def __init__(
        self, destination: Any, *, overwrite: bool, temp_key: str | None = None, name: str = "Download destination"
    ) -> None:
        #: What errors call it: the argument the user passed (``output_destination``), or "Download destination".
        self.name = name
        destination = as_location(destination)
        self.overwrite = overwrite
        self.temp_key = temp_key
        self.local = as_local_path(destination)
        self.remote: ObjectStoragePath | None = None if self.local is not None else destination
        if self.local is None and not _is_object_storage_path(destination):
            raise OpenAIFilesValidationError(
                f"{name} must be a path or an ObjectStoragePath, got {type(destination).__name__}"
            )
        self.display = str(self.local if self.local is not None else destination)
        self._tmp: Path | None = None
        self._remote_tmp: ObjectStoragePath | None = None

    def check(self) -> None:
        """Refuse before any request: missing parent, a directory, or an existing file without overwrite."""
        if self.local is not None:
            if not self.local.parent.is_dir():
                raise OpenAIFilesValidationError(
                    f"{self.name} {self.display!r}: parent directory does not exist ({self.local.parent}); create it"
                    " first (downloads do not create folders, so a mistyped path fails before any request)"
                )
            if self.local.is_dir():
                raise OpenAIFilesValidationError(f"{self.name} {self.display!r} is a directory")
            if self.local.exists() and not self.overwrite:
                raise OpenAIFilesValidationError(
                    f"{self.name} {self.display!r} already exists (pass overwrite=True to replace it)"
                )
        else:
            assert self.remote is not None
            with _store_errors(self.remote):
                exists = self.remote.exists()
            if exists and not self.overwrite:
                raise OpenAIFilesValidationError(
                    f"{self.name} {self.display!r} already exists (pass overwrite=True to replace it)"
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
                    f"{self.name} {self.display!r}: {stable.name} was created again while this try "
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
                        f"{self.name} {self.display!r} appeared during the download; not overwritten"
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
