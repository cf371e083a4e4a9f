"""The hook: every authenticated call of the OpenAI Files and Uploads APIs, over ``requests``."""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import requests
import urllib3
from airflow.sdk import BaseHook
from requests.adapters import HTTPAdapter
from requests_toolbelt import MultipartEncoder
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from airflow_openai_files._io import BoundedReader, Destination, UploadSource, resolve_source
from airflow_openai_files._progress import Progress
from airflow_openai_files._retry import RetryableError, RetryPolicy, classify, json_object
from airflow_openai_files._settings import ClientSettings, load_settings
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesValidationError
from airflow_openai_files.validation import PURPOSES

T = TypeVar("T")
MiB = 1024 * 1024
FILES_MAX_BYTES = 512 * MiB
BATCH_MAX_BYTES = 200 * MiB
EXPIRES_MIN, EXPIRES_MAX = 3600, 2_592_000
JSONL_PURPOSES = ("fine-tune", "batch")
# Larger socket writes and reads than http.client's 16 KiB: far fewer Python-level calls per GiB.
IO_BLOCK = 1 * MiB
# How long to look for an unanswered (read-timed-out) upload in the file list before sending it again.
SETTLE_MIN, SETTLE_MAX = 5.0, 30.0
_FILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")

log = logging.getLogger(__name__)


class IncompleteBodyError(requests.exceptions.ChunkedEncodingError):
    """The body ended before the byte count the server announced; retried like a dropped connection."""


class TotalTimeoutError(requests.exceptions.Timeout):
    """The attempt took longer than the connection's total ``timeout``."""


class _BigBlockAdapter(HTTPAdapter):
    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", IO_BLOCK)
        super().init_poolmanager(connections, maxsize, block=block, **kwargs)


def validate_file_id(file_id: Any, *, kind: str = "file") -> str:
    """Refuse ids that could reach another endpoint once put in a URL path."""
    if not isinstance(file_id, str) or not file_id:
        raise OpenAIFilesValidationError(f"Invalid {kind} id {file_id!r}: must be a non-empty string")
    if not _FILE_ID.fullmatch(file_id) or ".." in file_id:
        raise OpenAIFilesValidationError(
            f"Invalid {kind} id {file_id!r}: only letters, digits, '-' and '_' are allowed "
            "(no '/', '?', '#', '..' or whitespace)"
        )
    return file_id


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryableError):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not fix itself
    return isinstance(
        exc,
        (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ),
    )


def _may_have_reached_server(exc: BaseException | None) -> bool:
    """False only when we know the request was not processed (refused connection, rate limited)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    # requests wraps urllib3's MaxRetryError; its reason says whether a connection was ever made.
    if (
        isinstance(exc, requests.exceptions.ConnectionError)
        and exc.args
        and isinstance(getattr(exc.args[0], "reason", None), urllib3.exceptions.NewConnectionError)
    ):
        return False
    return not (isinstance(exc, RetryableError) and exc.status_code == 429)


def _mib(size: float) -> str:
    return f"{size / MiB:.1f} MiB"


class OpenAIFilesHook(BaseHook):
    """
    Talks to the OpenAI Files API with the key and settings of an ``openai_files`` connection.

    :param openai_conn_id: the Airflow connection to use.
    :param max_retries: retries after the first attempt; defaults to the connection's ``max_retries`` (5).
    :param timeout: total seconds for one attempt of one request; defaults to the connection's ``timeout``.
    :param multipart_threshold: above this many bytes ``upload_file`` uses the Uploads API.
    :param part_size: bytes per Uploads API part (at most 64 MiB).
    :param max_concurrency: parts sent at once by the Uploads API.
    """

    conn_name_attr = "openai_conn_id"
    default_conn_name = "openai_files_default"
    conn_type = "openai_files"
    hook_name = "OpenAI Files"

    def __init__(
        self,
        openai_conn_id: str = default_conn_name,
        *,
        max_retries: int | None = None,
        timeout: float | None = None,
        multipart_threshold: int | None = None,
        part_size: int = 64 * MiB,
        max_concurrency: int = 4,
    ) -> None:
        super().__init__()
        self.openai_conn_id = openai_conn_id
        self._max_retries = max_retries
        self._timeout = timeout
        self._multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.retry_policy = RetryPolicy(max_retries=max_retries if max_retries is not None else 5)
        self._session: requests.Session | None = None
        self._uploads: set[Any] = set()
        self._uploads_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(openai_conn_id={self.openai_conn_id!r})"

    # -- connection -----------------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form for Airflow versions that still ask the hook (3.1); 3.2+ read provider info."""
        return {
            "hidden_fields": ["login", "schema", "port"],
            "relabeling": {"host": "Base URL", "password": "API Key"},
            "placeholders": {"host": "https://api.openai.com/v1", "password": "sk-..."},
        }

    @functools.cached_property
    def settings(self) -> ClientSettings:
        """The validated connection; read once, on first use."""
        settings = load_settings(self.openai_conn_id)
        if self._max_retries is None:
            self.retry_policy.max_retries = settings.max_retries
        return settings

    @property
    def timeout(self) -> float:
        return self._timeout if self._timeout is not None else self.settings.timeout

    @property
    def multipart_threshold(self) -> int:
        if self._multipart_threshold is not None:
            return self._multipart_threshold
        return self.settings.multipart_threshold

    def get_conn(self) -> requests.Session:
        """The shared ``requests.Session`` carrying auth headers and a connection pool."""
        if self._session is None:
            settings = self.settings
            session = requests.Session()
            adapter = _BigBlockAdapter(pool_maxsize=max(10, self.max_concurrency * 2))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(settings.headers())
            session.verify = settings.verify
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (``GET /files?limit=1``)."""
        try:
            response = self._request("GET", "files", params={"limit": 1}, what="Listing files")
        except OpenAIFilesError as err:
            return False, str(err)
        return (
            True,
            f"Connected to {self.settings.base_url} (request id {response.headers.get('x-request-id')})",
        )

    # -- transport ------------------------------------------------------------------------------------

    def _retrying(self) -> Retrying:
        policy = self.retry_policy
        self.settings  # noqa: B018  # resolves max_retries from the connection before counting attempts

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hint = exc.retry_after if isinstance(exc, RetryableError) else None
            return policy.wait_for(state.attempt_number, hint)

        return Retrying(
            stop=stop_after_attempt(policy.max_retries + 1),
            wait=wait,
            retry=retry_if_exception(_is_retryable),
            before_sleep=self._log_retry,
            sleep=lambda seconds: policy.sleep(seconds),
            reraise=True,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning(
            "Attempt %d of %d failed (%s); retrying in %.2fs",
            state.attempt_number,
            self.retry_policy.max_retries + 1,
            _describe(exc),
            wait,
        )

    def _call(self, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` under the retry policy; every failure surfaces as OpenAIFilesError."""
        retrying = self._retrying()
        started = time.monotonic()
        try:
            return retrying(attempt)
        except OpenAIFilesError as err:
            if isinstance(err, RetryableError):
                attempts = retrying.statistics.get("attempt_number", 1)
                raise err.reworded(
                    f"{err.message}; gave up after {attempts} attempt(s) in {time.monotonic() - started:.1f}s"
                ) from None
            raise
        except requests.exceptions.RequestException as err:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise OpenAIFilesError(
                f"{what} failed after {attempts} attempt(s) in {time.monotonic() - started:.1f}s: {_describe(err)}"
            ) from err

    def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One attempt: send, and raise the classified error for a non-2xx answer."""
        settings = self.settings
        response = self.get_conn().request(
            method,
            settings.url(path),
            params=params,
            json=json,
            data=data,
            headers=headers,
            stream=stream,
            timeout=(settings.connect_timeout, self.timeout),
            # Per request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override ``session.verify``,
            # which would silently ignore the connection's ``verify`` (false or a CA bundle path).
            verify=settings.verify,
        )
        request_id = response.headers.get("x-request-id")
        if response.status_code >= 400:
            body = response.content[:65536]
            response.close()
            raise classify(response.status_code, response.headers, body, what=what)
        self.log.debug(
            "%s %s -> %d (request id %s, %s ms)",
            method,
            path,
            response.status_code,
            request_id,
            response.headers.get("openai-processing-ms"),
        )
        return response

    def _request(self, method: str, path: str, *, what: str, **kwargs: Any) -> requests.Response:
        return self._call(what, lambda: self._send(method, path, what=what, **kwargs))

    def _json(self, method: str, path: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        return self._payload(self._request(method, path, what=what, **kwargs), what)

    @staticmethod
    def _payload(response: requests.Response, what: str) -> dict[str, Any]:
        return json_object(response.json, what, response.headers)

    # -- files ----------------------------------------------------------------------------------------

    def get_file(self, file_id: str) -> dict[str, Any]:
        """
        Retrieve a File object.

        :param file_id: the ``file-...`` id.
        """
        validate_file_id(file_id)
        return self._json("GET", f"files/{file_id}", what=f"Retrieving {file_id}")

    def list_files(
        self, *, purpose: str | None = None, order: str = "desc", page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """
        Yield every File object, following ``after`` / ``has_more`` across all pages.

        :param purpose: only files with this purpose.
        :param order: ``desc`` (newest first) or ``asc`` by ``created_at``.
        :param page_size: files per request (1..10000); the API's default (10000) when None.
        """
        if order not in ("asc", "desc"):
            raise OpenAIFilesValidationError(f"order must be 'asc' or 'desc', got {order!r}")
        if page_size is not None and not (isinstance(page_size, int) and 1 <= page_size <= 10000):
            raise OpenAIFilesValidationError(f"page_size must be an integer from 1 to 10000, got {page_size!r}")
        return self._iter_files(purpose=purpose, order=order, page_size=page_size)

    def _iter_files(self, *, purpose: str | None, order: str, page_size: int | None) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"order": order}
        if purpose:
            params["purpose"] = purpose
        if page_size:
            params["limit"] = page_size
        while True:
            page = self._json("GET", "files", params=params, what="Listing files")
            data = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                return
            params["after"] = page.get("last_id") or data[-1]["id"]

    def delete_file(self, file_id: str, *, missing_ok: bool = False) -> dict[str, Any]:
        """
        Delete a file.

        :param file_id: the ``file-...`` id.
        :param missing_ok: treat a 404 as success (returns ``{"id", "object", "deleted": False}``).
        """
        validate_file_id(file_id)
        what = f"Deleting {file_id}"
        failures: list[BaseException] = []

        def attempt() -> requests.Response | None:
            try:
                return self._send("DELETE", f"files/{file_id}", what=what)
            except BaseException as err:
                gone = isinstance(err, OpenAIFilesError) and err.status_code == 404
                if gone and any(_may_have_reached_server(failure) for failure in failures):
                    return None  # an earlier attempt deleted it, and its answer was lost
                failures.append(err)
                raise

        try:
            response = self._call(what, attempt)
        except OpenAIFilesError as err:
            if missing_ok and err.status_code == 404:
                self.log.info("File %s was already gone (request id %s)", file_id, err.request_id)
                return {"id": file_id, "object": "file", "deleted": False}
            raise
        if response is None:
            self.log.warning("Deleted %s (by an earlier attempt whose answer was lost)", file_id)
            return {"id": file_id, "object": "file", "deleted": True}
        self.log.info("Deleted %s (request id %s)", file_id, response.headers.get("x-request-id"))
        return self._payload(response, what)

    def download_file(self, file_id: str, destination: Any, *, overwrite: bool = False) -> str:
        """
        Stream a file's content to ``destination``; it appears only once complete and of the right size.

        :param file_id: the ``file-...`` id.
        :param destination: a local path or an ObjectStoragePath.
        :param overwrite: replace an existing destination.
        :return: the destination, as a string.
        """
        validate_file_id(file_id)
        target = Destination(destination, overwrite=overwrite)
        target.check()
        expected = int(self.get_file(file_id)["bytes"])
        started = time.monotonic()
        progress = Progress(self.log, f"Downloading {file_id}", expected)

        def attempt() -> str | None:
            deadline = time.monotonic() + self.timeout
            response = self._send(
                "GET",
                f"files/{file_id}/content",
                what=f"Downloading {file_id}",
                stream=True,
                headers={"Accept-Encoding": "identity"},
            )
            received = 0
            progress.restart()
            with response, target.open_temp() as handle:
                read = response.raw.read
                while True:
                    try:
                        chunk = read(IO_BLOCK, decode_content=True)
                    except urllib3.exceptions.ReadTimeoutError as err:
                        raise requests.exceptions.ReadTimeout(str(err)) from err
                    except urllib3.exceptions.ProtocolError as err:
                        # urllib3's own error for a body cut short or a connection broken mid-body: the raw
                        # read bypasses requests, which would otherwise translate it (and we would not retry)
                        raise IncompleteBodyError(str(err)) from err
                    if not chunk:
                        break
                    handle.write(chunk)
                    received += len(chunk)
                    progress.update(received)
                    if time.monotonic() > deadline:
                        raise TotalTimeoutError(f"download exceeded the {self.timeout:.0f}s timeout")
            if received != expected:
                raise IncompleteBodyError(f"received {received} of {expected} bytes")
            return response.headers.get("x-request-id")

        try:
            request_id = self._call(f"Downloading {file_id}", attempt)
            target.commit()
        finally:
            target.discard()
        elapsed = max(time.monotonic() - started, 1e-9)
        self.log.info(
            "Downloaded %s to %s: %s in %.1fs (%.1f MiB/s, request id %s)",
            file_id,
            target.display,
            _mib(expected),
            elapsed,
            expected / MiB / elapsed,
            request_id,
        )
        return target.display

    # -- uploads --------------------------------------------------------------------------------------

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
    ) -> dict[str, Any]:
        """
        Upload a file, streaming it from disk, and return the File object.

        :param source: a local path, a binary file object or an ObjectStoragePath.
        :param purpose: one of ``assistants``, ``batch``, ``fine-tune``, ``vision``, ``user_data``, ``evals``.
        :param filename: the name OpenAI records; defaults to the source's name.
        :param expires_after_seconds: expire the file this long after creation (3600..2592000).
        :param multipart: force (True) or forbid (False) the Uploads API; by default it is used above
            ``multipart_threshold``.
        :param validate: check ``fine-tune`` / ``batch`` JSONL content before sending anything.
        :param reconcile_since: unix time of an earlier attempt (e.g. a previous task try); a file with
            the same name, size and purpose created since then is returned instead of uploading again.
        """
        self._check_purpose(purpose)
        self._check_expiry(expires_after_seconds)
        upload = resolve_source(source)
        try:
            name = filename or upload.name
            if not name:
                raise OpenAIFilesValidationError("A filename is required when uploading an unnamed file object")
            self._check_source(upload, name, purpose, multipart, validate)
            self.settings  # noqa: B018  # connection problems surface before anything is sent
            if reconcile_since is not None:
                existing = self.find_uploaded(name, upload.size, purpose, since=reconcile_since)
                if existing is not None:
                    self.log.info(
                        "File %s (%s, %d bytes) was already uploaded at %s by an earlier attempt; reusing it",
                        existing["id"],
                        name,
                        upload.size,
                        existing.get("created_at"),
                    )
                    return existing
            use_multipart = multipart if multipart is not None else upload.size > self.multipart_threshold
            if use_multipart:
                from airflow_openai_files._uploads import MultipartUpload

                return MultipartUpload(self, upload, name, purpose, expires_after_seconds).run()
            return self._post_file(upload, name, purpose, expires_after_seconds)
        finally:
            upload.close()

    @staticmethod
    def _check_purpose(purpose: Any) -> None:
        if purpose not in PURPOSES:
            raise OpenAIFilesValidationError(f"Unknown purpose {purpose!r}: expected one of {', '.join(PURPOSES)}")

    @staticmethod
    def _check_expiry(seconds: Any) -> None:
        if seconds is None:
            return
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not EXPIRES_MIN <= seconds <= EXPIRES_MAX:
            raise OpenAIFilesValidationError(
                f"expires_after_seconds must be a whole number from {EXPIRES_MIN} to {EXPIRES_MAX}, got {seconds!r}"
            )

    def _check_source(
        self, upload: UploadSource, name: str, purpose: str, multipart: bool | None, validate: bool
    ) -> None:
        where = upload.description
        if upload.size == 0:
            raise OpenAIFilesValidationError(f"Upload source {where!r} is empty")
        if purpose in JSONL_PURPOSES and not name.lower().endswith(".jsonl"):
            raise OpenAIFilesValidationError(f"{purpose} files must be .jsonl; {name!r} is not")
        if purpose == "batch" and upload.size > BATCH_MAX_BYTES:
            raise OpenAIFilesValidationError(
                f"Batch input {where!r} is {_mib(upload.size)}; the Batch API accepts at most {_mib(BATCH_MAX_BYTES)}"
            )
        if multipart is False and upload.size > FILES_MAX_BYTES:
            raise OpenAIFilesValidationError(
                f"Upload source {where!r} is {_mib(upload.size)}: POST /files accepts at most "
                f"{_mib(FILES_MAX_BYTES)}; allow the Uploads API (multipart=None or True) for larger files"
            )
        if validate and purpose in JSONL_PURPOSES:
            from airflow_openai_files.validation import check_jsonl, describe

            with upload.open() as stream:
                problem = check_jsonl(stream, purpose)
            if problem is not None:
                raise OpenAIFilesValidationError(f"{where}: invalid {purpose} JSONL: {describe(problem)}")

    def _post_file(
        self, upload: UploadSource, name: str, purpose: str, expires_after_seconds: int | None
    ) -> dict[str, Any]:
        what = f"Uploading {name}"
        fields: list[tuple[str, Any]] = [("purpose", purpose)]
        if expires_after_seconds is not None:
            fields += [
                ("expires_after[anchor]", "created_at"),
                ("expires_after[seconds]", str(expires_after_seconds)),
            ]
        progress = Progress(self.log, what, upload.size)
        first_sent: list[float] = []
        last_error: list[BaseException | None] = [None]

        def attempt() -> tuple[dict[str, Any], str | None]:
            if first_sent and _may_have_reached_server(last_error[0]):
                # The previous attempt may have created the file even though we saw no answer.
                try:
                    found = self._await_uploaded(name, upload.size, purpose, first_sent[0], last_error[0])
                except OpenAIFilesError as err:
                    raise err.reworded(
                        f"{what}: an earlier attempt may have created the file, and checking for it failed "
                        f"({err.message}); not re-sending it blind"
                    ) from err
                if found is not None:
                    self.log.warning(
                        "The previous attempt did create %s (%s); not uploading it again", found["id"], name
                    )
                    return found, None
            first_sent.append(time.time())
            try:
                with upload.open() as stream:
                    body = BoundedReader(stream, upload.size)
                    return self._send_multipart(what, "files", [*fields, ("file", (name, body))], progress)
            except BaseException as err:
                last_error[0] = err
                raise

        started = time.monotonic()
        created, request_id = self._call(what, attempt)
        elapsed = max(time.monotonic() - started, 1e-9)
        self.log.info(
            "Uploaded %s as %s (%s, purpose %s) in %.1fs (%.1f MiB/s), status %s, request id %s",
            name,
            created.get("id"),
            _mib(upload.size),
            purpose,
            elapsed,
            upload.size / MiB / elapsed,
            created.get("status"),
            request_id,
        )
        return created

    def _send_multipart(
        self, what: str, path: str, fields: list[tuple[str, Any]], progress: Progress | None
    ) -> tuple[dict[str, Any], str | None]:
        """One streamed multipart POST; the body is read from the open source as the socket drains it."""
        deadline = time.monotonic() + self.timeout
        if progress is not None:
            progress.restart()

        def on_read(sent: int) -> None:
            if progress is not None:
                progress.update(sent)
            if time.monotonic() > deadline:
                raise TotalTimeoutError(f"upload exceeded the {self.timeout:.0f}s timeout")

        body = MultipartBody(fields, on_read)
        response = self._send("POST", path, what=what, data=body, headers={"Content-Type": body.content_type})
        return self._payload(response, what), response.headers.get("x-request-id")

    def _register_upload(self, upload: Any) -> None:
        with self._uploads_lock:
            self._uploads.add(upload)

    def _unregister_upload(self, upload: Any) -> None:
        with self._uploads_lock:
            self._uploads.discard(upload)

    def cancel_active_uploads(self) -> None:
        """Cancel every Uploads API upload this hook has in flight (for ``on_kill``)."""
        with self._uploads_lock:
            active = list(self._uploads)
        for upload in active:
            upload.cancel()

    def _await_uploaded(
        self, name: str, size: int, purpose: str, since: float, failure: BaseException | None
    ) -> dict[str, Any] | None:
        """
        Look for the file an unanswered attempt may have created.

        After a read timeout the server had the whole body and may still be working on it: keep looking
        for twice the timeout (at least ``SETTLE_MIN``, at most ``SETTLE_MAX`` seconds) before concluding
        it never arrived, so a slow answer does not become a second file.
        """
        settle = 0.0
        if isinstance(failure, requests.exceptions.Timeout) and not isinstance(
            failure, requests.exceptions.ConnectTimeout
        ):
            settle = min(max(2 * self.timeout, SETTLE_MIN), SETTLE_MAX)
        end = time.monotonic() + settle
        interval = max(0.1, min(2.0, settle / 5))
        while True:
            found = self.find_uploaded(name, size, purpose, since=since)
            remaining = end - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            time.sleep(min(interval, remaining))

    def find_uploaded(self, filename: str, size: int, purpose: str, *, since: float) -> dict[str, Any] | None:
        """
        The newest file with this name, size and purpose created at or after ``since`` (unix seconds).

        Used to make retried uploads idempotent. Allows a few minutes of clock skew with the server.
        """
        horizon = since - 300
        for item in self._iter_files(purpose=purpose, order="desc", page_size=100):
            if int(item.get("created_at") or 0) < horizon:
                return None
            if item.get("filename") == filename and int(item.get("bytes") or -1) == size:
                return item
        return None


class MultipartBody:
    """
    A requests-toolbelt ``MultipartEncoder`` body, streamed without the encoder's copy buffer.

    The encoder does the encoding (boundary, per-part headers and their quoting, the length); its
    own ``read`` copies every block through a BytesIO (write, read, truncate), which cost about a third
    of the CPU time of a loopback upload and put the hook at 1.6x curl's time. Here each ``read``
    returns the source's own block or a small header, in the encoder's wire order, so a block is
    copied once, from the file into the socket. File fields are ``(filename, reader)`` where the
    reader has a ``len`` (see ``BoundedReader``); other fields are strings.
    """

    def __init__(self, fields: list[tuple[str, Any]], on_read: Callable[[int], None] | None = None) -> None:
        encoder = MultipartEncoder(
            fields=[
                (key, (value[0], value[1], "application/octet-stream") if isinstance(value, tuple) else value)
                for key, value in fields
            ]
        )
        self.content_type: str = encoder.content_type
        boundary = f"--{encoder.boundary_value}".encode()
        self._parts: list[Any] = []
        for part in encoder.parts:
            self._parts += [boundary + b"\r\n" + part.headers, part.body, b"\r\n"]
        self._parts.append(boundary + b"--\r\n")
        self._length = sum(len(p) if isinstance(p, bytes) else p.len for p in self._parts)
        if self._length != encoder.len:  # the encoder's layout changed: fail loudly rather than send garbage
            raise OpenAIFilesError(f"multipart layout mismatch ({self._length} != {encoder.len} bytes)")
        self._on_read = on_read
        self.bytes_read = 0

    def __len__(self) -> int:
        return self._length

    @property
    def len(self) -> int:
        return self._length - self.bytes_read

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(IO_BLOCK), b""))
        while self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                chunk, rest = part[:size], part[size:]
                if rest:
                    self._parts[0] = rest
                else:
                    self._parts.pop(0)
            else:
                chunk = part.read(size)
                if not chunk:
                    self._parts.pop(0)
                    continue
            self.bytes_read += len(chunk)
            if self._on_read is not None:
                self._on_read(self.bytes_read)
            return chunk
        return b""


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, OpenAIFilesError):
        return str(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"connection dropped while reading the answer ({type(exc).__name__}: {exc})"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"connection error ({exc})"
    return f"{type(exc).__name__}: {exc}"
