"""One HTTP transport for the sync client: one attempt, the retry loop, streamed form bodies.

Built from the connection's :class:`~airflow_openai_files.client.settings.ClientSettings`, a
:class:`~airflow_openai_files.client.retry.RetryPolicy` and a logger. It is the single boundary where
``requests`` / ``urllib3`` errors become ours: whatever leaves :meth:`Transport.call` (and so
:meth:`request`, :meth:`json`, :meth:`iter_pages`) is an :class:`OpenAIFilesError`. Which failures
are retried and how long to wait is decided in ``client.retry`` (``should_retry``, ``RetryPolicy.wait_for``),
shared with the async hook. HTTP answers that no retry can change (400/401/403/404/422, quota) are
:class:`~airflow_openai_files.exceptions.OpenAIFilesRequestError`, which Airflow does not retry; a 404
is :class:`~airflow_openai_files.exceptions.OpenAIFilesNotFoundError`, worded for the object the path
names (``client.errors.answer_error``, shared with the async transport).

Resource code (the ``hooks`` mixins, ``transfer.uploads``) depends on this module only, never on the hook.

The connection's flavor (OpenAI or Azure OpenAI) is handled here and in ``ClientSettings``, never in
resource code: a path such as ``files/{id}`` becomes the flavor's URL (``settings.url``), Azure's
``api-version`` query is added to every request (``settings.query``), the auth header is the key's or an
Entra ID bearer fetched per request (``token_provider``), and an answer whose request id is only in
Azure's ``apim-request-id`` / ``x-ms-request-id`` gets it copied to ``x-request-id``, so callers read
one header whatever the flavor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests_toolbelt import MultipartEncoder
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from airflow_openai_files.client.errors import answer_error
from airflow_openai_files.client.retry import (
    RETRY_LOG,
    RetryableError,
    RetryPolicy,
    certificate_failure,
    gave_up,
    json_object,
    request_id_from,
    should_retry,
)
from airflow_openai_files.client.retry import describe as describe_failure
from airflow_openai_files.client.settings import ClientSettings, explain, path_headers
from airflow_openai_files.exceptions import OpenAIFilesError
from airflow_openai_files.limits import MiB
from airflow_openai_files.transfer.progress import Progress

T = TypeVar("T")
# Larger socket writes and reads than http.client's 16 KiB: far fewer Python-level calls per GiB.
IO_BLOCK = 1 * MiB


class _IncompleteBody(requests.exceptions.ChunkedEncodingError):
    """The body ended before the byte count the server announced; retried like a dropped connection."""


class _TotalTimeout(requests.exceptions.Timeout):
    """The attempt took longer than the connection's total ``timeout``."""


class _BigBlockAdapter(HTTPAdapter):
    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", IO_BLOCK)
        super().init_poolmanager(connections, maxsize, block=block, **kwargs)


def may_have_reached_server(exc: BaseException | None) -> bool:
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
    return not (isinstance(exc, RetryableError) and exc.http_status == 429)


def is_read_timeout(exc: BaseException | None) -> bool:
    """A timeout after the request was sent (the server may still be working on it)."""
    return isinstance(exc, requests.exceptions.Timeout) and not isinstance(exc, requests.exceptions.ConnectTimeout)


def describe(exc: BaseException | None) -> str:
    """A requests/urllib3 failure in words; a certificate failure in the words the async transport uses too."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, OpenAIFilesError) or certificate_failure(exc) is not None:
        return describe_failure(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"connection dropped while reading the answer ({type(exc).__name__}: {exc})"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"connection error ({exc})"
    return describe_failure(exc)


class Transport:
    """
    Sends requests for one connection.

    :param settings: the validated connection.
    :param policy: waits between attempts (``wait_for``, ``sleep``); read at every retry, so changes apply.
    :param log: where retries and per-request debug lines go.
    :param max_retries: retries after the first attempt.
    :param timeout: total seconds for one attempt (uploads and downloads check it while streaming).
    :param pool_size: connections kept open (parallel Upload parts need several).
    :param token_provider: Azure Entra ID bearer tokens (``client.azure.TokenProvider``), fetched per request.
    """

    def __init__(
        self,
        settings: ClientSettings,
        policy: RetryPolicy,
        log: logging.Logger | Any,
        *,
        max_retries: int,
        timeout: float,
        pool_size: int = 10,
        token_provider: Any = None,
    ) -> None:
        self.settings = settings
        self.token_provider = token_provider
        self.policy = policy
        self.log = log
        self.max_retries = max_retries
        self.timeout = timeout
        self._pool_size = pool_size
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        """The shared ``requests.Session`` carrying auth headers and a connection pool."""
        if self._session is None:
            session = requests.Session()
            adapter = _BigBlockAdapter(pool_maxsize=self._pool_size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(self.settings.headers())
            session.verify = self.settings.verify
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- one attempt ----------------------------------------------------------------------------------

    def send(
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
        extra = path_headers(path)
        if extra:
            headers = {**extra, **(headers or {})}
        if self.token_provider is not None:
            headers = {**(headers or {}), "Authorization": f"Bearer {self.token_provider.get()}"}
        response = self.session.request(
            method,
            settings.url(path),
            params=settings.query(params),
            json=json,
            data=data,
            headers=headers,
            stream=stream,
            timeout=(settings.connect_timeout, self.timeout),
            # Per request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override ``session.verify``,
            # which would silently ignore the connection's ``verify`` (false or a CA bundle path).
            verify=settings.verify,
        )
        request_id = request_id_from(response.headers)
        if request_id and "x-request-id" not in response.headers:
            response.headers["x-request-id"] = request_id  # Azure's id, where every caller looks
        if response.status_code >= 400:
            body = response.content[:65536]
            response.close()
            if response.status_code == 401 and self.token_provider is not None:
                self.token_provider.invalidate()  # the next try fetches a new token
            raise answer_error(response.status_code, response.headers, body, what=what, path=path)
        self.log.debug(
            "%s %s -> %d (request id %s, %s ms)",
            method,
            path,
            response.status_code,
            request_id,
            response.headers.get("openai-processing-ms"),
        )
        return response

    def post_multipart(
        self, what: str, path: str, fields: list[tuple[str, Any]], progress: Progress | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """One streamed multipart POST; the body is read from the open source as the socket drains it."""
        deadline = time.monotonic() + self.timeout
        if progress is not None:
            progress.restart()

        def on_read(sent: int) -> None:
            if progress is not None:
                progress.update(sent)
            if time.monotonic() > deadline:
                raise _TotalTimeout(f"upload exceeded the {self.timeout:.0f}s timeout")

        body = MultipartBody(fields, on_read)
        response = self.send("POST", path, what=what, data=body, headers={"Content-Type": body.content_type})
        return self.payload(response, what), response.headers.get("x-request-id")

    def read_body(self, response: requests.Response, write: Callable[[bytes], Any], progress: Progress) -> int:
        """Stream a response body to ``write`` within the total timeout; urllib3 errors become retryable ones."""
        deadline = time.monotonic() + self.timeout
        received = 0
        progress.restart()
        read = response.raw.read
        while True:
            try:
                chunk = read(IO_BLOCK, decode_content=True)
            except urllib3.exceptions.ReadTimeoutError as err:
                raise requests.exceptions.ReadTimeout(str(err)) from err
            except urllib3.exceptions.ProtocolError as err:
                # urllib3's own error for a body cut short or a connection broken mid-body: the raw
                # read bypasses requests, which would otherwise translate it (and we would not retry)
                raise _IncompleteBody(str(err)) from err
            if not chunk:
                return received
            write(chunk)
            received += len(chunk)
            progress.update(received)
            if time.monotonic() > deadline:
                raise _TotalTimeout(f"download exceeded the {self.timeout:.0f}s timeout")

    @staticmethod
    def incomplete(message: str) -> BaseException:
        """The error for a body shorter than announced (retried like a dropped connection)."""
        return _IncompleteBody(message)

    # -- under the retry policy -----------------------------------------------------------------------

    def call(self, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` under the retry policy; every failure surfaces as OpenAIFilesError."""
        retrying = self._retrying()
        started = time.monotonic()
        try:
            return retrying(attempt)
        except OpenAIFilesError as err:
            if isinstance(err, RetryableError):
                raise explain(
                    self.settings, gave_up(err, retrying.statistics.get("attempt_number", 1), started)
                ) from None
            raise explain(self.settings, err) from err.__cause__
        except requests.exceptions.RequestException as err:
            attempts = retrying.statistics.get("attempt_number", 1)
            failed = OpenAIFilesError(
                f"{what} failed after {attempts} attempt(s) in {time.monotonic() - started:.1f}s: {describe(err)}"
            )
            raise explain(self.settings, failed, err) from err

    def request(self, method: str, path: str, *, what: str, **kwargs: Any) -> requests.Response:
        return self.call(what, lambda: self.send(method, path, what=what, **kwargs))

    def json(self, method: str, path: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON object answered to ``method path`` (retried under the policy)."""
        return self.payload(self.request(method, path, what=what, **kwargs), what)

    @staticmethod
    def payload(response: requests.Response, what: str) -> dict[str, Any]:
        return json_object(response.json, what, response.headers)

    def iter_pages(self, path: str, params: dict[str, Any] | None, what: str) -> Iterator[dict[str, Any]]:
        """Yield every item of a cursor-paginated list, following ``after`` / ``has_more``."""
        query = dict(params or {})
        while True:
            page = self.json("GET", path, params=query, what=what)
            data = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                return
            query["after"] = page.get("last_id") or data[-1]["id"]

    def _retrying(self) -> Retrying:
        policy = self.policy

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hint = exc.retry_after if isinstance(exc, RetryableError) else None
            return policy.wait_for(state.attempt_number, hint)

        return Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait,
            retry=retry_if_exception(should_retry),
            before_sleep=self._log_retry,
            sleep=lambda seconds: policy.sleep(seconds),
            reraise=True,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning(
            RETRY_LOG,
            state.attempt_number,
            self.max_retries + 1,
            describe(exc),
            wait,
        )


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
