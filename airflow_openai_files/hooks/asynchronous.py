"""
``OpenAIFilesAsyncHook``: the triggerer's way to the API. Every trigger polls through it.

It owns what would otherwise be copied into each trigger: reading the connection without blocking the
event loop, the TLS context (built once per ``verify`` setting, in a thread), one ``httpx.AsyncClient``
per connection per event loop shared by every trigger of that connection, and the retry loop, which asks
:mod:`airflow_openai_files.client.retry` (the same module the sync hook asks) what heals and how long to wait.

Adding a resource is one short method on top of :meth:`OpenAIFilesAsyncHook.request_json`::

    async def get_batch(self, batch_id: str) -> dict[str, Any]:
        return await self.request_json("GET", f"batches/{validate_file_id(batch_id, kind='batch')}",
                                       what=f"Retrieving {batch_id}")

    async def list_fine_tuning_events(self, job_id: str, *, after: str | None = None, limit: int = 20):
        return await self.request_json("GET", f"fine_tuning/jobs/{job_id}/events", what=f"Listing events of {job_id}",
                                       params={"after": after, "limit": limit} if after else {"limit": limit})

``request_json`` validates nothing about the path: callers check ids first (``validation.validate_file_id``).
It returns the answer's JSON object, or raises :class:`OpenAIFilesError` (the status, type, code and
request id of the last answer; ``status_code == 404`` for a missing object) or :class:`DeadlineReached`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_openai_files.client.azure import provider_for
from airflow_openai_files.client.errors import explain
from airflow_openai_files.client.retry import (
    RetryableError,
    RetryPolicy,
    classify,
    describe,
    json_object,
    request_id_from,
    should_retry,
)
from airflow_openai_files.client.settings import ClientSettings, parse_settings
from airflow_openai_files.exceptions import OpenAIFilesConfigError, OpenAIFilesError
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.validation import validate_file_id

log = logging.getLogger(__name__)

# Connection lookups in flight, per connection id: triggers that start together (a triggerer picking up
# hundreds at once) share one lookup instead of each running Airflow's secrets-backend code in turn. Nothing
# is kept once a lookup is over, so an edited connection applies to the next trigger.
_LOOKUPS: dict[str, asyncio.Task[ClientSettings]] = {}

_SSL_CONTEXTS: dict[bool | str, ssl.SSLContext | bool] = {}
_SSL_BUILDS: dict[bool | str, asyncio.Task[ssl.SSLContext | bool]] = {}

# Connection pool of the shared client. httpcore rescans its whole pool (connections x queued requests, and
# connections x connections) each time a request starts or ends, so hundreds of pooled connections stall the
# event loop when hundreds of triggers poll at once; 20 reused connections (measured with 200 triggers) serve
# the polls without that, and a poll queued for a connection still ends by its own timeout and the deadline.
_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=20)


class DeadlineReached(Exception):
    """The caller's deadline ran out before an answer (or before the wait for the next attempt ended)."""


def _build_ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    if verify is False:
        return False
    if verify is True:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


async def _ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """
    One TLS context per ``verify`` setting, shared by every trigger of the process.

    Building one loads a CA bundle (~20 ms of CPU); doing that for each of hundreds of triggers would
    stall the triggerer's event loop, so it is built once, in a thread.
    """
    if verify in _SSL_CONTEXTS:
        return _SSL_CONTEXTS[verify]
    loop = asyncio.get_running_loop()
    pending = _SSL_BUILDS.get(verify)
    if pending is None or pending.get_loop() is not loop:
        # One build in flight per setting: hundreds of triggers starting together wait for the same one.
        pending = _SSL_BUILDS[verify] = loop.create_task(asyncio.to_thread(_build_ssl_context, verify))
    try:
        context = await asyncio.shield(pending)
    finally:
        if pending.done() and _SSL_BUILDS.get(verify) is pending:
            del _SSL_BUILDS[verify]
    _SSL_CONTEXTS[verify] = context
    return context


def _forget_lookup(conn_id: str, done: asyncio.Task[ClientSettings]) -> None:
    if _LOOKUPS.get(conn_id) is done:
        del _LOOKUPS[conn_id]


@dataclass
class _Shared:
    client: httpx.AsyncClient
    users: int = 0


# Per event loop (the triggerer has one; tests start many), per connection id and settings (an edited
# connection gets a new client while triggers of the old one finish on theirs).
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, ClientSettings], _Shared]] = (
    weakref.WeakKeyDictionary()
)


def shared_clients() -> dict[tuple[str, ClientSettings], httpx.AsyncClient]:
    """The clients open in the running event loop, by (connection id, settings); for tests and diagnostics."""
    pool = _CLIENTS.get(asyncio.get_running_loop(), {})
    return {key: shared.client for key, shared in pool.items()}


async def _load_settings(conn_id: str) -> ClientSettings:
    """Read the connection without blocking the loop (``BaseHook.aget_connection`` where Airflow has it)."""
    from airflow_openai_files._compat import AirflowNotFoundException, aget_connection

    try:
        conn = await aget_connection(conn_id)
    except AirflowNotFoundException:
        raise OpenAIFilesConfigError(
            f"Connection {conn_id!r} is not defined: create an 'openai_files' connection in "
            f"the UI or set AIRFLOW_CONN_{conn_id.upper()}"
        ) from None
    try:
        aextra = getattr(conn, "aextra_dejson", None)
        extra = (await aextra()) if aextra is not None else conn.extra_dejson
    except Exception:
        raise OpenAIFilesConfigError(f"Connection {conn_id!r}: field 'extra' is not valid JSON") from None
    settings = parse_settings(
        conn_id, host=conn.host, password=conn.password, extra=extra or {}, port=conn.port, schema=conn.schema
    )
    from airflow_openai_files._compat import amask_secret

    for secret in settings.secrets():
        await amask_secret(secret)
    return settings


class OpenAIFilesAsyncHook:
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

    # -- connection, TLS and the shared client ---------------------------------------------------------------

    async def get_settings(self) -> ClientSettings:
        """The connection's settings, sharing a lookup already in flight for the same connection id."""
        if self._settings is None:
            loop = asyncio.get_running_loop()
            pending = _LOOKUPS.get(self.openai_conn_id)
            if pending is None or pending.get_loop() is not loop:
                pending = loop.create_task(_load_settings(self.openai_conn_id))
                _LOOKUPS[self.openai_conn_id] = pending
                pending.add_done_callback(functools.partial(_forget_lookup, self.openai_conn_id))
            # shield: one trigger being cancelled must not cancel the lookup the others wait for.
            self._settings = await asyncio.shield(pending)
            log.info("%s", self._settings.describe_routes())  # once per hook
        return self._settings

    async def __aenter__(self) -> OpenAIFilesAsyncHook:
        if self._entered == 0:
            self._client = await self._acquire(await self.get_settings())
        self._entered += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._entered -= 1
        if self._entered == 0 and self._settings is not None:
            self._client = None
            await self._release(self._settings)

    async def _acquire(self, settings: ClientSettings) -> httpx.AsyncClient:
        try:
            verify = await _ssl_context(settings.verify)
        except (OSError, ssl.SSLError) as err:
            raise OpenAIFilesConfigError(
                f"Connection {settings.conn_id!r}: field 'verify' is unusable: {err}"
            ) from None
        pool = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
        key = (settings.conn_id, settings)
        shared = pool.get(key)
        if shared is None:
            client = httpx.AsyncClient(
                headers=settings.headers(),
                timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
                verify=verify,
                limits=_LIMITS,
            )
            shared = pool[key] = _Shared(client)
        shared.users += 1
        return shared.client

    async def _release(self, settings: ClientSettings) -> None:
        pool = _CLIENTS.get(asyncio.get_running_loop(), {})
        key = (settings.conn_id, settings)
        shared = pool.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            del pool[key]
            # shield: a trigger cancelled as it leaves must still close the sockets it was the last user of.
            await asyncio.shield(shared.client.aclose())

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[tuple[httpx.AsyncClient, ClientSettings]]:
        async with self:
            assert self._client is not None and self._settings is not None
            yield self._client, self._settings

    # -- the one request loop ---------------------------------------------------------------------------------

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

        :param what: the action in words for messages and logs (``"Retrieving file-abc"``).
        :raises OpenAIFilesError: an answer or failure that does not heal, or retries used up.
        :raises DeadlineReached: :attr:`deadline` ran out first (the message says what the last attempt saw).
        """
        async with self._session() as (client, settings):
            policy = RetryPolicy(max_retries=settings.max_retries)
            # Azure with Entra ID: a bearer per attempt (cached, refreshed before expiry, fetched in a thread).
            tokens = provider_for(settings)
            query = settings.query(params)
            started = time.monotonic()
            attempt = 0
            while True:
                attempt += 1
                limit = settings.timeout
                if self.deadline is not None:
                    limit = min(limit, self.deadline - time.monotonic())
                    if limit <= 0:
                        raise DeadlineReached("time ran out before the next attempt")
                # The request's own timeouts end it by the deadline. Not asyncio.wait_for: before Python 3.12 it
                # can swallow a cancellation that arrives as the answer does, and the triggerer cancels triggers.
                try:
                    auth = {"Authorization": f"Bearer {await tokens.aget()}"} if tokens is not None else None
                    response = await client.request(
                        method,
                        settings.url(path),
                        params=query,
                        json=json,
                        headers=auth,
                        timeout=httpx.Timeout(limit, connect=min(settings.connect_timeout, limit)),
                    )
                except httpx.HTTPError as exc:
                    if not should_retry(exc):
                        raise explain(settings, OpenAIFilesError(f"{what} failed: {describe(exc)}"), exc) from exc
                    error: OpenAIFilesError = RetryableError(f"{what} failed: {describe(exc)}")
                else:
                    if response.status_code < 400:
                        log.debug(
                            "%s %s -> %d (request id %s)",
                            method,
                            path,
                            response.status_code,
                            request_id_from(response.headers),
                        )
                        return json_object(response.json, what, response.headers)
                    if response.status_code == 401 and tokens is not None:
                        tokens.invalidate()
                    error = classify(response.status_code, response.headers, response.content[:65536], what=what)
                if not should_retry(error):
                    raise explain(settings, error)
                if attempt > policy.max_retries:
                    raise explain(
                        settings,
                        error.reworded(
                            f"{error.message}; gave up after {attempt} attempt(s) in {time.monotonic() - started:.1f}s"
                        ),
                    )
                wait = policy.wait_for(attempt, getattr(error, "retry_after", None))
                if self.deadline is not None and time.monotonic() + wait >= self.deadline:
                    raise DeadlineReached(f"last attempt: {error}")  # also a request cut short by the deadline
                log.warning(
                    "Attempt %d of %d failed (%s); retrying in %.2fs", attempt, policy.max_retries + 1, error, wait
                )
                await self.sleep(wait)

    # -- resources --------------------------------------------------------------------------------------------

    async def get_file(self, file_id: str) -> dict[str, Any]:
        """Retrieve a File object (``GET /files/{file_id}``)."""
        return await self.request_json("GET", f"files/{validate_file_id(file_id)}", what=f"Retrieving {file_id}")

    async def get_batch(self, batch_id: str) -> dict[str, Any]:
        """Retrieve a Batch object (``GET /batches/{batch_id}``)."""
        path = f"batches/{validate_file_id(batch_id, kind='batch')}"
        return await self.request_json("GET", path, what=f"Retrieving {batch_id}")

    async def get_fine_tuning_job(self, job_id: str) -> dict[str, Any]:
        """Retrieve a fine-tuning job (``GET /fine_tuning/jobs/{job_id}``)."""
        job_id = validate_file_id(job_id, kind="fine-tuning job")
        return await self.request_json("GET", f"fine_tuning/jobs/{job_id}", what=f"Retrieving {job_id}")

    async def list_fine_tuning_events_page(
        self, job_id: str, *, after: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        """One page of a job's events, newest first: ``{"data": [...], "has_more": bool}``."""
        job_id = validate_file_id(job_id, kind="fine-tuning job")
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return await self.request_json(
            "GET", f"fine_tuning/jobs/{job_id}/events", what=f"Listing events of {job_id}", params=params
        )

    async def cancel_fine_tuning_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a fine-tuning job (``POST /fine_tuning/jobs/{job_id}/cancel``)."""
        job_id = validate_file_id(job_id, kind="fine-tuning job")
        return await self.request_json("POST", f"fine_tuning/jobs/{job_id}/cancel", what=f"Cancelling {job_id}")
