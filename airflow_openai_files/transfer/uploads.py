"""The two upload strategies, side by side, over the transport (never the hook).

* :class:`PlainUpload` - one streamed ``POST /files``; after an attempt whose answer was lost it looks
  for the file that attempt may have created before sending again (no duplicates).
* :class:`MultipartUpload` - ``POST /uploads``, the parts in parallel (each streamed from its offset),
  ``/complete``; any failure or ``cancel()`` cancels the Upload.

Both take a :class:`~airflow_openai_files.client.transport.Transport` and an :class:`UploadJob` (what to
send) and return the File object from ``run()``. :func:`find_uploaded` is the duplicate lookup both use
after an attempt whose answer was lost; the hook's ``find_uploaded`` and ``upload_file(reconcile_since=)``
use it across task tries (see :mod:`airflow_openai_files.resume`).
"""

from __future__ import annotations

import hashlib
import mimetypes
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from airflow_openai_files.client.transport import Transport, is_read_timeout, may_have_reached_server
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesValidationError, UploadCancelledError
from airflow_openai_files.limits import CLOCK_SKEW_SECONDS, PART_MAX_BYTES, UPLOAD_MAX_BYTES, MiB
from airflow_openai_files.transfer.progress import Progress, human_size, rate, request_id_note
from airflow_openai_files.transfer.sources import BoundedReader, BytesReader, UploadSource, read_exact

HASH_BLOCK = 1 * MiB
# How long to look for an unanswered (read-timed-out) upload in the file list before sending it again.
SETTLE_MIN, SETTLE_MAX = 5.0, 30.0
__all__ = ["MultipartUpload", "PlainUpload", "UploadJob", "UploadRegistry", "find_uploaded"]


@dataclass
class UploadJob:
    """One file to upload: the checked source, the recorded name, purpose and expiry."""

    source: UploadSource
    name: str
    purpose: str
    expires_after_seconds: int | None = None

    @property
    def what(self) -> str:
        return f"Uploading {self.name}"


def find_uploaded(
    transport: Transport, filename: str, size: int, purpose: str, *, since: float, what: str = "Listing files"
) -> dict[str, Any] | None:
    """The newest file with this name, size and purpose created at or after ``since`` (unix seconds, local
    clock; :data:`~airflow_openai_files.limits.CLOCK_SKEW_SECONDS` earlier on the service's clock)."""
    horizon = since - CLOCK_SKEW_SECONDS
    params = {"purpose": purpose, "order": "desc", "limit": 100}
    for item in transport.iter_pages("files", params, what):
        if int(item.get("created_at") or 0) < horizon:
            return None
        if item.get("filename") == filename and int(item.get("bytes") or -1) == size:
            return item
    return None


class UploadRegistry:
    """The Uploads API uploads in flight, so ``on_kill`` can cancel them from another thread."""

    def __init__(self) -> None:
        self._active: set[MultipartUpload] = set()
        self._lock = threading.Lock()

    def add(self, upload: MultipartUpload) -> None:
        with self._lock:
            self._active.add(upload)

    def discard(self, upload: MultipartUpload) -> None:
        with self._lock:
            self._active.discard(upload)

    def cancel_all(self) -> None:
        with self._lock:
            active = list(self._active)
        for upload in active:
            upload.cancel()


class PlainUpload:
    """One streamed ``POST /files``, retried without ever creating a second file."""

    def __init__(self, transport: Transport, job: UploadJob, log: Any) -> None:
        self.transport = transport
        self.job = job
        self.log = log

    def run(self) -> dict[str, Any]:
        job, what = self.job, self.job.what
        fields: list[tuple[str, Any]] = [("purpose", job.purpose)]
        if job.expires_after_seconds is not None:
            fields += [
                ("expires_after[anchor]", "created_at"),
                ("expires_after[seconds]", str(job.expires_after_seconds)),
            ]
        progress = Progress(self.log, what, job.source.size)
        first_sent: list[float] = []
        last_error: list[BaseException | None] = [None]

        def attempt() -> tuple[dict[str, Any], str | None]:
            if first_sent and may_have_reached_server(last_error[0]):
                # The previous attempt may have created the file even though we saw no answer.
                try:
                    found = self._await_uploaded(first_sent[0], last_error[0])
                except OpenAIFilesError as err:
                    raise err.reworded(
                        f"{what}: an earlier attempt may have created the file, and checking for it failed "
                        f"({err.message}); not re-sending it blind"
                    ) from err
                if found is not None:
                    self.log.warning(
                        "The previous attempt did create %s (%s); not uploading it again", found["id"], job.name
                    )
                    return found, None
            first_sent.append(time.time())
            try:
                with job.source.open() as stream:
                    body = BoundedReader(stream, job.source.size)
                    return self.transport.post_multipart(what, "files", [*fields, ("file", (job.name, body))], progress)
            except BaseException as err:
                last_error[0] = err
                raise

        started = time.monotonic()
        created, request_id = self.transport.call(what, attempt)
        elapsed = time.monotonic() - started
        self.log.info(
            "Uploaded %s as %s (%s, purpose %s) in %.1fs (%s), status %s%s",
            job.name,
            created.get("id"),
            human_size(job.source.size),
            job.purpose,
            elapsed,
            rate(job.source.size, elapsed),
            created.get("status"),
            request_id_note(request_id),
        )
        return created

    def _await_uploaded(self, since: float, failure: BaseException | None) -> dict[str, Any] | None:
        """
        Look for the file an unanswered attempt may have created.

        After a read timeout the server had the whole body and may still be working on it: keep looking
        for twice the timeout (at least ``SETTLE_MIN``, at most ``SETTLE_MAX`` seconds) before concluding
        it never arrived, so a slow answer does not become a second file.
        """
        settle = min(max(2 * self.transport.timeout, SETTLE_MIN), SETTLE_MAX) if is_read_timeout(failure) else 0.0
        end = time.monotonic() + settle
        interval = max(0.1, min(2.0, settle / 5))
        job = self.job
        while True:
            found = find_uploaded(self.transport, job.name, job.source.size, job.purpose, since=since, what=job.what)
            remaining = end - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            time.sleep(min(interval, remaining))


def _mime_type(name: str) -> str:
    if name.lower().endswith(".jsonl"):
        return "text/jsonl"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class MultipartUpload:
    """
    One file through ``POST /uploads``, ``/parts`` (in parallel) and ``/complete``.

    Any failure, or ``cancel()`` from another thread (the operator's ``on_kill``), cancels the
    Upload so nothing half-finished lingers on the account.
    """

    #: Hash each part as it is sent (``ResumableLocalUpload`` records the md5 of every stored part).
    track_parts = False

    def __init__(
        self,
        transport: Transport,
        job: UploadJob,
        log: Any,
        *,
        part_size: int,
        max_concurrency: int,
        registry: UploadRegistry | None = None,
    ) -> None:
        if not 0 < part_size <= PART_MAX_BYTES:
            raise OpenAIFilesValidationError(f"part_size must be from 1 byte to 64 MiB, got {part_size}")
        if job.source.size > UPLOAD_MAX_BYTES:
            raise OpenAIFilesValidationError(
                f"{job.source.description} is {job.source.size} bytes; the Uploads API takes at most 8 GB"
            )
        self.transport = transport
        self.log = log
        self.job = job
        self.source = job.source
        self.name = job.name
        self.purpose = job.purpose
        self.expires_after_seconds = job.expires_after_seconds
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.registry = registry or UploadRegistry()
        self.upload_id: str | None = None
        self.request_id: str | None = None
        self._cancelled = threading.Event()
        self._progress = Progress(self.log, f"Uploading {job.name} in parts", job.source.size)
        self._sent = 0
        self._sent_lock = threading.Lock()
        self._cancel_sent = False
        self._cancel_requested = False  # by cancel(): on_kill, never a failed part
        self._kept: dict[int, str] = {}  # parts an earlier try sent, by index (ResumableLocalUpload)

    def run(self) -> dict[str, Any]:
        started = time.time()
        self.registry.add(self)
        try:
            completed, part_ids = self._upload(started)
        except BaseException as err:
            self._failed(err)
            raise
        finally:
            self.registry.discard(self)
        file_obj: dict[str, Any] = completed.get("file") or {}
        elapsed = time.time() - started
        self.log.info(
            "Uploaded %s as %s through Upload %s: %s in %d part(s), %.1fs (%s)%s",
            self.name,
            file_obj.get("id"),
            self.upload_id,
            human_size(self.source.size),
            len(part_ids),
            elapsed,
            rate(self.source.size, elapsed),
            request_id_note(self.request_id),
        )
        return file_obj

    def _upload(self, started: float) -> tuple[dict[str, Any], list[str]]:
        self.upload_id = self._create()["id"]
        part_ids, md5 = self._send_parts()
        return self._complete(part_ids, md5, started), part_ids

    def _failed(self, err: BaseException) -> None:
        """Nothing half-finished lingers: the Upload is cancelled (``ResumableLocalUpload`` keeps it)."""
        self.cancel()

    def _part_sent(self, index: int, part_id: str, offset: int, length: int, md5: str | None) -> None:
        """Called once per part stored by the service (``ResumableLocalUpload`` records it)."""

    def cancel(self) -> None:
        """Stop sending parts and cancel the Upload on the server (best effort, once)."""
        self._cancel_requested = True
        self._cancelled.set()
        with self._sent_lock:
            if self._cancel_sent or self.upload_id is None:
                return
            self._cancel_sent = True
        try:
            self.transport.send("POST", f"uploads/{self.upload_id}/cancel", what=f"Cancelling {self.upload_id}")
            self.log.warning("Cancelled Upload %s of %s", self.upload_id, self.name)
        except Exception as err:  # the Upload expires on its own within the hour
            self.log.warning("Could not cancel Upload %s (%s); it expires within an hour", self.upload_id, err)

    # -- steps ----------------------------------------------------------------------------------------

    def _create(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "filename": self.name,
            "purpose": self.purpose,
            "bytes": self.source.size,
            "mime_type": _mime_type(self.name),
        }
        if self.expires_after_seconds is not None:
            body["expires_after"] = {"anchor": "created_at", "seconds": self.expires_after_seconds}
        created = self.transport.json("POST", "uploads", json=body, what=f"Creating an Upload for {self.name}")
        self.log.info(
            "Created Upload %s for %s (%s, %s parts, %d at a time)",
            created.get("id"),
            self.name,
            human_size(self.source.size),
            human_size(self.part_size),
            self.max_concurrency,
        )
        return created

    def _offsets(self) -> list[tuple[int, int]]:
        size, step = self.source.size, self.part_size
        return [(offset, min(step, size - offset)) for offset in range(0, size, step)]

    def _send_parts(self) -> tuple[list[str], str]:
        offsets = self._offsets()
        if self.source.local_path is not None:
            return self._send_local_parts(offsets)
        return self._send_buffered_parts(offsets)

    def _send_local_parts(self, offsets: list[tuple[int, int]]) -> tuple[list[str], str]:
        """Each part reads its own window of the file; md5 is hashed alongside in one sequential pass."""
        md5 = hashlib.md5(usedforsecurity=False)
        path = self.source.local_path
        assert path is not None

        def hash_file() -> str:
            with open(path, "rb") as handle:
                while block := handle.read(HASH_BLOCK):
                    if self._cancelled.is_set():
                        break
                    md5.update(block)
            return md5.hexdigest()

        workers = self.max_concurrency + 1
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-part") as pool:
            hashing = pool.submit(hash_file)
            todo = [(i, offset, length) for i, (offset, length) in enumerate(offsets) if i not in self._kept]
            futures = {i: pool.submit(self._send_window, i, offset, length) for i, offset, length in todo}
            self._collect(list(futures.values()))
            digest = hashing.result()
        return [self._kept[i] if i in self._kept else futures[i].result() for i in range(len(offsets))], digest

    def _send_window(self, index: int, offset: int, length: int) -> str:
        def attempt() -> str:
            md5 = hashlib.md5(usedforsecurity=False) if self.track_parts else None

            def count(chunk: bytes) -> None:
                if md5 is not None:
                    md5.update(chunk)
                self._count(chunk)

            with self.source.open() as stream:
                stream.seek(offset)
                part_id = self._post_part(index, BoundedReader(stream, length, count))
            self._part_sent(index, part_id, offset, length, md5.hexdigest() if md5 is not None else None)
            return part_id

        return self._retry_part(index, attempt)

    def _send_buffered_parts(self, offsets: list[tuple[int, int]]) -> tuple[list[str], str]:
        """Read a remote stream in order, holding at most ``max_concurrency`` parts in memory."""
        md5 = hashlib.md5(usedforsecurity=False)
        slots = threading.Semaphore(self.max_concurrency)
        futures: list[Future[str]] = []

        def send_buffer(index: int, data: bytearray) -> str:
            try:
                return self._retry_part(index, lambda: self._post_part(index, BytesReader(data, self._count)))
            finally:
                slots.release()

        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="openai-part") as pool:
            try:
                with self.source.open() as stream:
                    for index, (_, length) in enumerate(offsets):
                        slots.acquire()
                        if self._cancelled.is_set() or any(f.done() and f.exception() for f in futures):
                            slots.release()
                            break
                        data = read_exact(stream, length)
                        md5.update(data)
                        futures.append(pool.submit(send_buffer, index, data))
                        del data
            except BaseException:
                self._cancelled.set()
                raise
            part_ids = self._collect(futures)
        if len(part_ids) != len(offsets):
            raise UploadCancelledError(f"Upload {self.upload_id} of {self.name} stopped before its last part")
        return part_ids, md5.hexdigest()

    def _collect(self, futures: list[Future[str]]) -> list[str]:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            self._cancelled.set()  # the other parts stop at their next read
            wait(futures)
            raise failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]

    def _retry_part(self, index: int, attempt: Callable[[], str]) -> str:
        return self.transport.call(f"Sending part {index + 1} of Upload {self.upload_id}", attempt)

    def _post_part(self, index: int, body: Any) -> str:
        if self._cancelled.is_set():
            raise UploadCancelledError(f"Upload {self.upload_id} was cancelled")
        part, _ = self.transport.post_multipart(
            f"Sending part {index + 1} of Upload {self.upload_id}",
            f"uploads/{self.upload_id}/parts",
            [("data", (self.name, body))],
        )
        self.log.debug("Part %d of Upload %s stored as %s", index + 1, self.upload_id, part.get("id"))
        return str(part["id"])

    def _count(self, chunk: bytes) -> None:
        if self._cancelled.is_set():
            raise UploadCancelledError(f"Upload {self.upload_id} was cancelled")
        with self._sent_lock:
            self._sent += len(chunk)
            sent = self._sent
        self._progress.update(sent)

    def _complete(self, part_ids: list[str], md5: str, started: float) -> dict[str, Any]:
        what = f"Completing Upload {self.upload_id}"
        try:
            response = self.transport.request(
                "POST", f"uploads/{self.upload_id}/complete", json={"part_ids": part_ids, "md5": md5}, what=what
            )
            self.request_id = response.headers.get("x-request-id")
            return self.transport.payload(response, what)
        except OpenAIFilesError as err:
            # A completion whose answer was lost looks like "already completed" on the retry.
            if err.http_status != 400 or "complete" not in str(err).lower():
                raise
            found = find_uploaded(self.transport, self.name, self.source.size, self.purpose, since=started, what=what)
            if found is None:
                raise
            return {"id": self.upload_id, "object": "upload", "status": "completed", "file": found}
