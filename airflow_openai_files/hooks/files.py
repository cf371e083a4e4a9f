"""The Files and Uploads API methods: :class:`FilesAPIMixin` (sync hook) and :class:`AsyncFilesAPIMixin`.

The resource-mixin contract (every mixin of ``OpenAIFilesHook``: Files here, Batches and Fine-tuning in
their modules) - a sync mixin uses only what the hook base provides:

* ``self._transport`` - a :class:`~airflow_openai_files.client.transport.Transport`:
  ``json(method, path, *, what, params=None, json=None)`` returns the answered JSON object, retried
  under the connection's policy; ``request(...)`` the ``requests.Response``; ``send(...)`` one attempt
  without retries; ``call(what, attempt)`` runs a callable under the policy;
  ``iter_pages(path, params, what)`` yields every item of a cursor-paginated list (``after`` /
  ``has_more``); ``post_multipart(what, path, fields, progress)`` streams a form body. ``what`` starts
  every error message (``"Creating batch"`` -> ``"Creating batch failed with HTTP 401: ..."``).
  Paths are relative to the Base URL (``"files"`` or ``"/batches"``).
* ``self.log`` for what the person on call should read, ``self.settings`` (read-only) for the
  connection, and the input checks of :mod:`airflow_openai_files.validation`.

An async mixin (of ``OpenAIFilesAsyncHook``, for triggers) uses only
``await self.request_json(method, path, *, what, params=None, json=None)``; it shares the path and id
checks of its sync twin through module-level helpers such as :func:`file_path`.

Errors: the transports raise :class:`~airflow_openai_files.exceptions.OpenAIFilesError` only, already
typed (final answers are ``OpenAIFilesRequestError``, a missing object ``OpenAIFilesNotFoundError`` worded
for it); input problems are ``OpenAIFilesValidationError`` raised before any request. A mixin never
touches ``requests`` or ``httpx`` itself.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_openai_files import limits
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesNotFoundError, OpenAIFilesValidationError
from airflow_openai_files.hooks.base import AsyncAPIMixin
from airflow_openai_files.transfer.destinations import Destination
from airflow_openai_files.transfer.progress import Progress, human_size, rate, request_id_note
from airflow_openai_files.transfer.sources import resolve_source
from airflow_openai_files.validation import check_expiry, check_purpose, check_source, validate_file_id

if TYPE_CHECKING:
    from airflow_openai_files.client.settings import ClientSettings
    from airflow_openai_files.client.transport import Transport
    from airflow_openai_files.transfer.uploads import UploadRegistry


def file_path(file_id: str, suffix: str = "") -> str:
    """``files/{file_id}{suffix}`` once the id is checked (shared by the sync and async mixins)."""
    return f"files/{validate_file_id(file_id)}{suffix}"


class FilesAPIMixin:
    """``get_file``, ``list_files``, ``delete_file``, ``download_file``, ``upload_file`` and friends."""

    if TYPE_CHECKING:
        _transport: Transport
        settings: ClientSettings
        part_size: int
        max_concurrency: int

        @property
        def multipart_threshold(self) -> int: ...

        log: Any  # LoggingMixin's logger

    @functools.cached_property
    def _upload_registry(self) -> UploadRegistry:
        from airflow_openai_files.transfer.uploads import UploadRegistry

        return UploadRegistry()

    def get_file(self, file_id: str) -> dict[str, Any]:
        """
        Retrieve a File object.

        :param file_id: the ``file-...`` id.
        """
        return self._transport.json("GET", file_path(file_id), what=f"Retrieving {file_id}")

    def list_files(
        self, *, purpose: str | None = None, order: str = "desc", page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """
        Yield every File object, following ``after`` / ``has_more`` across all pages.

        :param purpose: only files with this purpose (any purpose a file can have, service-created ones too).
        :param order: ``desc`` (newest first) or ``asc`` by ``created_at``.
        :param page_size: files per request (1..10000); the API's default (10000) when None.
        """
        if purpose:
            check_purpose(purpose, allowed=limits.ALL_PURPOSES)
        if order not in ("asc", "desc"):
            raise OpenAIFilesValidationError(f"order must be 'asc' or 'desc', got {order!r}")
        if page_size is not None and not (isinstance(page_size, int) and 1 <= page_size <= limits.LIST_LIMIT_MAX):
            raise OpenAIFilesValidationError(
                f"page_size must be an integer from 1 to {limits.LIST_LIMIT_MAX}, got {page_size!r}"
            )
        params: dict[str, Any] = {"order": order}
        if purpose:
            params["purpose"] = purpose
        if page_size:
            params["limit"] = page_size
        return self._transport.iter_pages("files", params, "Listing files")

    def delete_file(self, file_id: str, *, missing_ok: bool = False) -> dict[str, Any]:
        """
        Delete a file.

        :param file_id: the ``file-...`` id.
        :param missing_ok: treat a 404 as success (returns ``{"id", "object", "deleted": False}``).
        """
        from airflow_openai_files.client.transport import may_have_reached_server

        validate_file_id(file_id)
        what = f"Deleting {file_id}"
        transport = self._transport
        failures: list[BaseException] = []

        def attempt() -> Any:
            try:
                return transport.send("DELETE", f"files/{file_id}", what=what)
            except BaseException as err:
                gone = isinstance(err, OpenAIFilesNotFoundError)
                if gone and any(may_have_reached_server(failure) for failure in failures):
                    return None  # an earlier attempt deleted it, and its answer was lost
                failures.append(err)
                raise

        try:
            response = transport.call(what, attempt)
        except OpenAIFilesNotFoundError as err:
            if missing_ok:
                self.log.info("File %s was already gone%s", file_id, request_id_note(err.request_id))
                return {"id": file_id, "object": "file", "deleted": False}
            raise
        if response is None:
            self.log.warning("Deleted %s (by an earlier attempt whose answer was lost)", file_id)
            return {"id": file_id, "object": "file", "deleted": True}
        self.log.info("Deleted %s%s", file_id, request_id_note(response.headers.get("x-request-id")))
        return transport.payload(response, what)

    def download_file(
        self,
        file_id: str,
        destination: Any,
        *,
        overwrite: bool = False,
        temp_key: str | None = None,
        name: str = "Download destination",
    ) -> str:
        """
        Stream a file's content to ``destination``; it appears only once complete and of the right size.

        :param file_id: the ``file-...`` id.
        :param destination: a local path, an ObjectStoragePath, or a ``scheme://...`` string (as the operators).
        :param overwrite: replace an existing destination.
        :param temp_key: a key stable across a task's tries (``resume.task_key(context)``): names a local
            temporary file the next try can find and remove; random without one.
        :param name: what errors call the destination: the caller's argument (``output_destination``).
        :return: the destination, as a string.
        """
        validate_file_id(file_id)
        target = Destination(destination, overwrite=overwrite, temp_key=temp_key, name=name)
        target.check()
        file = self.get_file(file_id)
        expected = int(file["bytes"])
        transport = self._transport
        what = f"Downloading {file_id}"
        started = time.monotonic()
        progress = Progress(self.log, what, expected)

        def attempt() -> str | None:
            response = transport.send(
                "GET", f"files/{file_id}/content", what=what, stream=True, headers={"Accept-Encoding": "identity"}
            )
            with response, target.open_temp() as handle:
                received = transport.read_body(response, handle.write, progress)
            if received != expected:
                raise transport.incomplete(f"received {received} of {expected} bytes")
            return response.headers.get("x-request-id")

        try:
            request_id = transport.call(what, attempt)
            target.commit()
        except OpenAIFilesError as err:
            purpose = file.get("purpose")
            if err.http_status != 400 or purpose in limits.DOWNLOADABLE_PURPOSES:
                raise
            # The service keeps the content of most purposes to itself and answers a bare 400; say which
            # can be downloaded, so the DAG's author changes the pipeline instead of retrying it.
            raise err.reworded(
                f"{err.message}. {file_id} ({file.get('filename')}) has purpose {purpose!r}; the service lets a"
                f" client download the content of files with purpose {', '.join(limits.DOWNLOADABLE_PURPOSES)} only"
            ) from err
        finally:
            target.discard()
        elapsed = time.monotonic() - started
        self.log.info(
            "Downloaded %s to %s: %s in %.1fs (%s%s)",
            file_id,
            target.display,
            human_size(expected),
            elapsed,
            rate(expected, elapsed),
            request_id_note(request_id),
        )
        return target.display

    def upload_file(
        self,
        source: Any,
        purpose: str,
        *,
        filename: str | None = None,
        expires_after_seconds: int | None = None,
        multipart: bool | None = None,
        validate: bool = True,
        reconcile_since: float | None = None,
        resume: Any = None,
    ) -> dict[str, Any]:
        """
        Upload a file, streaming it from its source, and return the File object.

        Check the input, pick a strategy (one ``POST /files``, or the Uploads API above
        ``multipart_threshold``), run it.

        :param source: a local path, a ``scheme://...`` string, a binary file object or an ObjectStoragePath.
        :param purpose: one of ``assistants``, ``batch``, ``fine-tune``, ``vision``, ``user_data``, ``evals``.
        :param filename: the name OpenAI records; defaults to the source's name.
        :param expires_after_seconds: expire the file this long after creation (3600..2592000).
        :param multipart: force (True) or forbid (False) the Uploads API; by default it is used above
            ``multipart_threshold``.
        :param validate: check ``fine-tune`` / ``batch`` JSONL content before sending anything.
        :param reconcile_since: unix time of an earlier attempt (e.g. a previous task try); a file with
            the same name, size and purpose created since then is returned instead of uploading again.
        :param resume: a :class:`~airflow_openai_files.resume.TaskRecord` (the operator passes the
            task's): an Uploads API upload records its Upload id and completed parts there, and a
            later try within the Upload's one-hour life sends only the missing parts.
        """
        from airflow_openai_files.transfer.uploads import MultipartUpload, PlainUpload, UploadJob, find_uploaded

        check_purpose(purpose)
        expires = check_expiry(expires_after_seconds)
        upload = resolve_source(source)
        try:
            name = filename or upload.name
            if not name:
                raise OpenAIFilesValidationError("A filename is required when uploading an unnamed file object")
            check_source(upload, name, purpose, multipart, validate)
            job = UploadJob(upload, name, purpose, expires)
            transport = self._transport  # connection problems surface before anything is sent
            if reconcile_since is not None:
                existing = find_uploaded(transport, name, upload.size, purpose, since=reconcile_since, what=job.what)
                if existing is not None:
                    self.log.info(
                        "File %s (%s, %d bytes) was already uploaded at %s by an earlier attempt; reusing it",
                        existing["id"],
                        name,
                        upload.size,
                        existing.get("created_at"),
                    )
                    return existing
                self.log.info("No earlier upload of %s to reuse; uploading it", name)
            use_multipart = multipart if multipart is not None else upload.size > self.multipart_threshold
            if use_multipart:
                options: dict[str, Any] = {
                    "part_size": self.part_size,
                    "max_concurrency": self.max_concurrency,
                    "registry": self._upload_registry,
                }
                if getattr(resume, "available", False):
                    from airflow_openai_files.transfer.journal import RecordedRemoteUpload, ResumableLocalUpload

                    # A local file is resumed part by part; another source's Upload is recorded so the
                    # next try cancels what a killed try left pending.
                    kind = ResumableLocalUpload if upload.local_path is not None else RecordedRemoteUpload
                    return kind(transport, job, self.log, record=resume, **options).run()
                return MultipartUpload(transport, job, self.log, **options).run()
            return PlainUpload(transport, job, self.log).run()
        finally:
            upload.close()

    def cancel_active_uploads(self) -> None:
        """Cancel every Uploads API upload this hook has in flight (for ``on_kill``)."""
        self._upload_registry.cancel_all()

    def find_uploaded(
        self, filename: str, size: int, purpose: str, *, since: float, what: str | None = None
    ) -> dict[str, Any] | None:
        """
        The newest file with this name, size and purpose created at or after ``since`` (unix seconds).

        Used to make retried uploads idempotent. Looks :data:`~airflow_openai_files.limits.CLOCK_SKEW_SECONDS`
        further back, for the difference between this machine's clock and the service's ``created_at``.
        ``what`` starts an error message (default ``"Listing files"``; an upload passes ``"Uploading <name>"``
        so a retry reports a failure in the same words as the first try).
        """
        from airflow_openai_files.transfer.uploads import find_uploaded

        return find_uploaded(self._transport, filename, size, purpose, since=since, what=what or "Listing files")


class AsyncFilesAPIMixin(AsyncAPIMixin):
    """``get_file`` for triggers (``OpenAIFilesAsyncHook``)."""

    async def get_file(self, file_id: str) -> dict[str, Any]:
        """Retrieve a File object (``GET /files/{file_id}``)."""
        return await self.request_json("GET", file_path(file_id), what=f"Retrieving {file_id}")
