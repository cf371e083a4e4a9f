"""Airflow glue of both hooks: the connection, its settings, the transport, ``test_connection``.

:class:`OpenAIFilesHookBase` (sync, the worker) and :class:`OpenAIFilesAsyncHookBase` (async, the
triggerer) each give the resource mixins (``hooks/files.py`` and the like) the one thing they need:
``self._transport`` (a :class:`~airflow_openai_files.client.transport.Transport`) and
``self._request_json`` (through an :class:`~airflow_openai_files.client.async_transport.AsyncTransport`).
See :mod:`airflow_openai_files.hooks.files` for the contract. The async glue imports httpx only when it
is first used, so the worker never loads it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_openai_files.client.form import hook_ui_field_behaviour
from airflow_openai_files.client.retry import RetryPolicy
from airflow_openai_files.client.settings import DEFAULT_MAX_RETRIES, ClientSettings, load_settings
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesRequestError
from airflow_openai_files.hooks.waiting import wait_until
from airflow_openai_files.limits import CONN_TYPE, DEFAULT_CONN_ID, PART_MAX_BYTES
from airflow_openai_files.validation import validate_file_id

log = logging.getLogger(__name__)

#: How long :meth:`OpenAIFilesHookBase.wait_until_processed` waits by default (the official SDK's default too).
DEFAULT_PROCESSING_TIMEOUT = 1800.0

if TYPE_CHECKING:
    import httpx
    import requests

    from airflow_openai_files.client.transport import Transport


class OpenAIFilesHookBase(BaseHook):
    """
    Connection handling shared by every resource mixin.

    :param openai_conn_id: the Airflow connection to use.
    :param max_retries: retries after the first attempt; defaults to the connection's ``max_retries``.
    :param timeout: total seconds for one attempt of one request; defaults to the connection's ``timeout``.
    :param multipart_threshold: above this many bytes uploads use the Uploads API.
    :param part_size: bytes per Uploads API part (at most 64 MiB).
    :param max_concurrency: parts sent at once by the Uploads API.
    :param azure_credential: for an Azure connection with ``use_azure_credential``: the credential to take
        Entra ID tokens from (any object with ``get_token(scope)``) instead of ``DefaultAzureCredential``.
    """

    conn_name_attr = "openai_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "OpenAI Files"

    def __init__(
        self,
        openai_conn_id: str = DEFAULT_CONN_ID,
        *,
        max_retries: int | None = None,
        timeout: float | None = None,
        multipart_threshold: int | None = None,
        part_size: int = PART_MAX_BYTES,
        max_concurrency: int = 4,
        azure_credential: Any = None,
    ) -> None:
        super().__init__()
        self._azure_credential = azure_credential
        self.openai_conn_id = openai_conn_id
        self._max_retries = max_retries
        self._timeout = timeout
        self._multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        #: How long to wait between attempts (tests replace ``sleep``); the attempt budget is ``max_retries``.
        self.retry_policy = RetryPolicy(max_retries=max_retries if max_retries is not None else DEFAULT_MAX_RETRIES)
        self._client: Transport | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(openai_conn_id={self.openai_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form for Airflow versions that still ask the hook (3.1); 3.2+ read provider info."""
        return hook_ui_field_behaviour()

    @functools.cached_property
    def settings(self) -> ClientSettings:
        """The validated connection; read once, on first use, and nothing else (which routes: logged once)."""
        settings = load_settings(self.openai_conn_id)
        self.log.info("%s", settings.describe_routes())
        return settings

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt: the hook's argument, else the connection's ``max_retries``."""
        return self._max_retries if self._max_retries is not None else self.settings.max_retries

    @property
    def timeout(self) -> float:
        return self._timeout if self._timeout is not None else self.settings.timeout

    @property
    def multipart_threshold(self) -> int:
        if self._multipart_threshold is not None:
            return self._multipart_threshold
        return self.settings.multipart_threshold

    @property
    def _transport(self) -> Transport:
        """The transport every API method sends through (built on first use)."""
        if self._client is None:
            from airflow_openai_files.client.azure import provider_for
            from airflow_openai_files.client.transport import Transport

            self._client = Transport(
                self.settings,
                self.retry_policy,
                self.log,
                max_retries=self.max_retries,
                timeout=self.timeout,
                pool_size=max(10, self.max_concurrency * 2),
                token_provider=provider_for(self.settings, self._azure_credential),
            )
        return self._client

    def get_conn(self) -> requests.Session:
        """The shared ``requests.Session`` carrying auth headers and a connection pool."""
        return self._transport.session

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (``GET /files?limit=1``)."""
        try:
            response = self._transport.request("GET", "files", params={"limit": 1}, what="Listing files")
        except OpenAIFilesError as err:
            field = getattr(err, "field", None)
            if field:  # the form's field at fault, not the temporary connection id the UI test generates
                return False, f"Field {field!r} {getattr(err, 'problem', '')}".rstrip()
            return False, str(err)
        request_id = response.headers.get("x-request-id")
        return True, f"Connected to {self.settings.base_url}" + (f" (request id {request_id})" if request_id else "")

    # -- files that must be processed before use (Azure) ------------------------------------------------

    def wait_until_processed(
        self, file_id: str, *, timeout: float = DEFAULT_PROCESSING_TIMEOUT, poll_interval: float = 5.0
    ) -> dict[str, Any]:
        """
        Poll ``GET /files/{file_id}`` until the file is ``processed``; return its File object.

        :raises OpenAIFilesRequestError: the file ended in ``error`` (its ``status_details`` quoted), or is
            ``deleting`` / ``deleted``: it will never be usable, so the task fails without retries.
        :raises OpenAIFilesTimeoutError: ``timeout`` seconds passed first (Airflow may retry the task).
        """
        from airflow_openai_files.resources import files

        validate_file_id(file_id)
        started = time.monotonic()
        file, verdict = wait_until(
            lambda: self._transport.json("GET", f"files/{file_id}", what=f"Retrieving {file_id}"),
            files.judge,
            poll_interval=poll_interval,
            timeout=timeout,
            describe=files.describe,
            what=f"{file_id} to be processed",
            log=self.log,
        )
        if verdict.state == "error":
            raise OpenAIFilesRequestError(verdict.message)
        self.log.info("%s after %.1fs", verdict.message, time.monotonic() - started)
        return file

    def wait_for_input_file(
        self, file_id: str, *, timeout: float = DEFAULT_PROCESSING_TIMEOUT, poll_interval: float = 5.0
    ) -> dict[str, Any] | None:
        """
        Make sure a file can be used by a batch or a fine-tuning job before creating one.

        Azure OpenAI refuses a batch or job whose file is not ``processed`` yet, so on an Azure
        connection this waits (:meth:`wait_until_processed`) and returns the File object. OpenAI takes
        the file at once: nothing is sent and ``None`` is returned. Operators that consume a file call
        this, so a DAG needs no sensor of its own to run on both.
        """
        if not self.settings.files_need_processing:
            return None
        return self.wait_until_processed(file_id, timeout=timeout, poll_interval=poll_interval)


class AsyncAPIMixin:
    """The base of every resource's async mixin: what it may use of :class:`OpenAIFilesAsyncHookBase`.

    Only :meth:`~OpenAIFilesAsyncHookBase.request_json`, declared here once for type checkers; at run time the
    hook class composed in ``hooks/__init__`` provides it.
    """

    if TYPE_CHECKING:

        async def request_json(
            self, method: str, path: str, *, what: str, params: dict[str, Any] | None = None, json: Any = None
        ) -> dict[str, Any]: ...


class OpenAIFilesAsyncHookBase:
    """
    Async access to the API for triggers, with the sync hook's connection, headers and retry rules.

    Use it as an async context manager around the polls of one trigger: entering reads the connection and
    takes a reference on the event loop's shared client for it; leaving gives the reference back, and the
    last one out closes the client. A call outside the context manager takes and returns a reference itself.

    :param openai_conn_id: the ``openai_files`` connection.
    :param deadline: ``time.monotonic()`` value after which no attempt starts and no retry waits; an
        attempt in flight is cut at it by its own timeouts. ``None``: the connection's timeouts only.
    """

    default_conn_name = DEFAULT_CONN_ID

    def __init__(self, openai_conn_id: str = DEFAULT_CONN_ID, *, deadline: float | None = None) -> None:
        self.openai_conn_id = openai_conn_id
        self.deadline = deadline
        # How the hook waits between attempts; tests replace it to record waits without sleeping.
        self.sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
        self._settings: ClientSettings | None = None
        self._client: httpx.AsyncClient | None = None
        self._entered = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(openai_conn_id={self.openai_conn_id!r})"

    async def get_settings(self) -> ClientSettings:
        """The connection's settings, sharing a lookup already in flight for the same connection id."""
        if self._settings is None:
            from airflow_openai_files.client.async_transport import load_settings as aload_settings

            self._settings = await aload_settings(self.openai_conn_id)
            log.info("%s", self._settings.describe_routes())  # once per hook
        return self._settings

    async def __aenter__(self) -> OpenAIFilesAsyncHookBase:
        if self._entered == 0:
            from airflow_openai_files.client.async_transport import acquire_client

            self._client = await acquire_client(await self.get_settings())
        self._entered += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._entered -= 1
        if self._entered == 0 and self._settings is not None:
            from airflow_openai_files.client.async_transport import release_client

            self._client = None
            await release_client(self._settings)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        """
        Send ``method path`` (relative to the connection's base URL) under the retry rules; the JSON object.

        Callers check ids first (``validation.validate_id``): the path is sent as it is.

        :raises OpenAIFilesError: an answer or failure that does not heal, or retries used up
            (:class:`~airflow_openai_files.exceptions.OpenAIFilesNotFoundError` for a missing object).
        :raises OpenAIFilesTimeoutError: :attr:`deadline` ran out first.
        """
        from airflow_openai_files.client.async_transport import AsyncTransport

        async with self:
            assert self._client is not None and self._settings is not None
            transport = AsyncTransport(self._client, self._settings, deadline=self.deadline, sleep=self.sleep)
            return await transport.json(method, path, what=what, params=params, json=json)
