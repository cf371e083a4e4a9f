"""Large files through the Uploads API: parts sent in parallel, each streamed from its offset."""

from __future__ import annotations

import hashlib
import io
import mimetypes
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from airflow_openai_files._io import BoundedReader, UploadSource
from airflow_openai_files._progress import Progress
from airflow_openai_files.exceptions import OpenAIFilesError

if TYPE_CHECKING:
    from airflow_openai_files.hooks import OpenAIFilesHook

MiB = 1024 * 1024
MAX_PART_SIZE = 64 * MiB
MAX_UPLOAD_BYTES = 8 * 1000 * 1000 * 1000
HASH_BLOCK = 1 * MiB


class UploadCancelledError(OpenAIFilesError):
    """The Upload was cancelled while its parts were being sent (task killed)."""


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

    def __init__(
        self,
        hook: OpenAIFilesHook,
        upload: UploadSource,
        name: str,
        purpose: str,
        expires_after_seconds: int | None,
    ) -> None:
        if not 0 < hook.part_size <= MAX_PART_SIZE:
            raise OpenAIFilesError(f"part_size must be from 1 byte to 64 MiB, got {hook.part_size}")
        if upload.size > MAX_UPLOAD_BYTES:
            raise OpenAIFilesError(f"{upload.description} is {upload.size} bytes; the Uploads API takes at most 8 GB")
        self.hook = hook
        self.log = hook.log
        self.source = upload
        self.name = name
        self.purpose = purpose
        self.expires_after_seconds = expires_after_seconds
        self.upload_id: str | None = None
        self.request_id: str | None = None
        self._cancelled = threading.Event()
        self._progress = Progress(self.log, f"Uploading {name} in parts", upload.size)
        self._sent = 0
        self._sent_lock = threading.Lock()
        self._cancel_sent = False

    def run(self) -> dict[str, Any]:
        started = time.time()
        self.hook._register_upload(self)
        try:
            created = self._create()
            self.upload_id = created["id"]
            part_ids, md5 = self._send_parts()
            completed = self._complete(part_ids, md5, started)
        except BaseException:
            self.cancel()
            raise
        finally:
            self.hook._unregister_upload(self)
        file_obj: dict[str, Any] = completed.get("file") or {}
        elapsed = max(time.time() - started, 1e-9)
        self.log.info(
            "Uploaded %s as %s through Upload %s: %.1f MiB in %d part(s), %.1fs (%.1f MiB/s), request id %s",
            self.name,
            file_obj.get("id"),
            self.upload_id,
            self.source.size / MiB,
            len(part_ids),
            elapsed,
            self.source.size / MiB / elapsed,
            self.request_id,
        )
        return file_obj

    def cancel(self) -> None:
        """Stop sending parts and cancel the Upload on the server (best effort, once)."""
        self._cancelled.set()
        with self._sent_lock:
            if self._cancel_sent or self.upload_id is None:
                return
            self._cancel_sent = True
        try:
            self.hook._send("POST", f"uploads/{self.upload_id}/cancel", what=f"Cancelling {self.upload_id}")
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
        created = self.hook._json("POST", "uploads", json=body, what=f"Creating an Upload for {self.name}")
        self.log.info(
            "Created Upload %s for %s (%.1f MiB, %d-MiB parts, %d at a time)",
            created.get("id"),
            self.name,
            self.source.size / MiB,
            self.hook.part_size // MiB,
            self.hook.max_concurrency,
        )
        return created

    def _offsets(self) -> list[tuple[int, int]]:
        size, step = self.source.size, self.hook.part_size
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

        workers = self.hook.max_concurrency + 1
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-part") as pool:
            hashing = pool.submit(hash_file)
            futures = [
                pool.submit(self._send_window, index, offset, length) for index, (offset, length) in enumerate(offsets)
            ]
            part_ids = self._collect(futures)
            digest = hashing.result()
        return part_ids, digest

    def _send_window(self, index: int, offset: int, length: int) -> str:
        def attempt() -> str:
            with self.source.open() as stream:
                stream.seek(offset)
                return self._post_part(index, BoundedReader(stream, length, self._count))

        return self._retry_part(index, attempt)

    def _send_buffered_parts(self, offsets: list[tuple[int, int]]) -> tuple[list[str], str]:
        """Read a remote stream in order, holding at most ``max_concurrency`` parts in memory."""
        md5 = hashlib.md5(usedforsecurity=False)
        slots = threading.Semaphore(self.hook.max_concurrency)
        futures: list[Future[str]] = []

        def send_buffer(index: int, data: bytearray) -> str:
            try:
                return self._retry_part(index, lambda: self._post_part(index, _BytesReader(data, self._count)))
            finally:
                slots.release()

        with ThreadPoolExecutor(self.hook.max_concurrency, thread_name_prefix="openai-part") as pool:
            try:
                with self.source.open() as stream:
                    for index, (_, length) in enumerate(offsets):
                        slots.acquire()
                        if self._cancelled.is_set() or any(f.done() and f.exception() for f in futures):
                            slots.release()
                            break
                        data = _read_exact(stream, length)
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

    def _retry_part(self, index: int, attempt: Any) -> str:
        return self.hook._call(f"Sending part {index + 1} of Upload {self.upload_id}", attempt)

    def _post_part(self, index: int, body: Any) -> str:
        if self._cancelled.is_set():
            raise UploadCancelledError(f"Upload {self.upload_id} was cancelled")
        part, _ = self.hook._send_multipart(
            f"Sending part {index + 1} of Upload {self.upload_id}",
            f"uploads/{self.upload_id}/parts",
            [("data", (self.name, body))],
            None,
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
            response = self.hook._request(
                "POST", f"uploads/{self.upload_id}/complete", json={"part_ids": part_ids, "md5": md5}, what=what
            )
            self.request_id = response.headers.get("x-request-id")
            return self.hook._payload(response, what)
        except OpenAIFilesError as err:
            # A completion whose answer was lost looks like "already completed" on the retry.
            if err.status_code != 400 or "complete" not in str(err).lower():
                raise
            found = self.hook.find_uploaded(self.name, self.source.size, self.purpose, since=started)
            if found is None:
                raise
            return {"id": self.upload_id, "object": "upload", "status": "completed", "file": found}


class _BytesReader(BoundedReader):
    def __init__(self, data: bytes | bytearray, on_read: Any) -> None:
        super().__init__(io.BytesIO(data), len(data), on_read)


def _read_exact(stream: Any, length: int) -> bytearray:
    buffer = bytearray()
    while len(buffer) < length:
        chunk = stream.read(min(length - len(buffer), HASH_BLOCK))
        if not chunk:
            raise OpenAIFilesError(f"Upload source ended {length - len(buffer)} bytes early")
        buffer += chunk
    return buffer
