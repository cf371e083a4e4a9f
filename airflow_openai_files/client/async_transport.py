"""The async transport, twin of :mod:`airflow_openai_files.client.transport`: the triggerer's way to the API.

It owns what would otherwise be copied into each trigger: reading the connection without blocking the
event loop, the TLS context (built once per ``verify`` setting, in a thread), one ``httpx.AsyncClient``
per connection per event loop shared by every trigger of that connection, and the request loop. What the
two transports decide alike comes from the same module-level helpers: which failures heal and how long to
wait (:mod:`.retry`), the error for an answer (:func:`.errors.answer_error`, 404s worded per resource),
the "gave up" message (:func:`.retry.gave_up`) and the retry log line.

httpx lives only here: the worker side never imports this module (the async hook imports it on first use).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_openai_files.client.azure import provider_for
from airflow_openai_files.client.errors import answer_error
from airflow_openai_files.client.retry import (
    RETRY_LOG,
    RetryableError,
    RetryPolicy,
    describe,
    gave_up,
    json_object,
    request_id_from,
    should_retry,
)
from airflow_openai_files.client.settings import ClientSettings, explain, parse_settings, path_headers
from airflow_openai_files.exceptions import OpenAIFilesConfigError, OpenAIFilesError, OpenAIFilesTimeoutError

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


async def _read_settings(conn_id: str) -> ClientSettings:
    """Read the connection without blocking the loop (``BaseHook.aget_connection`` where Airflow has it)."""
    from airflow_openai_files._compat import AirflowNotFoundException, aget_connection, amask_secret

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
    for secret in settings.secrets():
        await amask_secret(secret)
    return settings


async def load_settings(conn_id: str) -> ClientSettings:
    """The connection's settings, sharing a lookup already in flight for the same connection id."""
    loop = asyncio.get_running_loop()
    pending = _LOOKUPS.get(conn_id)
    if pending is None or pending.get_loop() is not loop:
        pending = loop.create_task(_read_settings(conn_id))
        _LOOKUPS[conn_id] = pending
        pending.add_done_callback(functools.partial(_forget_lookup, conn_id))
    # shield: one trigger being cancelled must not cancel the lookup the others wait for.
    return await asyncio.shield(pending)


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


async def acquire_client(settings: ClientSettings) -> httpx.AsyncClient:
    """Take a reference on the event loop's shared client for ``settings`` (created on first use)."""
    try:
        verify = await _ssl_context(settings.verify)
    except (OSError, ssl.SSLError) as err:
        raise OpenAIFilesConfigError(f"Connection {settings.conn_id!r}: field 'verify' is unusable: {err}") from None
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


async def release_client(settings: ClientSettings) -> None:
    """Give a reference back; the last user out closes the client."""
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


class AsyncTransport:
    """
    Sends requests for one connection over a shared client, under the retry rules and a deadline.

    :param client: the shared ``httpx.AsyncClient`` (see :func:`acquire_client`).
    :param settings: the validated connection.
    :param deadline: ``time.monotonic()`` value after which no attempt starts and no retry waits; an
        attempt in flight is cut at it by its own timeouts. ``None``: the connection's timeouts only.
    :param sleep: how to wait between attempts (tests record the waits instead of sleeping).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: ClientSettings,
        *,
        deadline: float | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.settings = settings
        self.deadline = deadline
        self.sleep = sleep

    async def json(
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
        :raises OpenAIFilesTimeoutError: :attr:`deadline` ran out first (the message says what the last
            attempt saw).
        """
        client, settings = self.client, self.settings
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
                    raise OpenAIFilesTimeoutError(f"{what}: time ran out before the next attempt")
            # The request's own timeouts end it by the deadline. Not asyncio.wait_for: before Python 3.12 it
            # can swallow a cancellation that arrives as the answer does, and the triggerer cancels triggers.
            try:
                headers = path_headers(path) or {}
                if tokens is not None:
                    headers["Authorization"] = f"Bearer {await tokens.aget()}"
                response = await client.request(
                    method,
                    settings.url(path),
                    params=query,
                    json=json,
                    headers=headers or None,
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
                error = answer_error(
                    response.status_code, response.headers, response.content[:65536], what=what, path=path
                )
            if not should_retry(error):
                raise explain(settings, error)
            if attempt > policy.max_retries:
                raise explain(settings, gave_up(error, attempt, started))
            wait = policy.wait_for(attempt, getattr(error, "retry_after", None))
            if self.deadline is not None and time.monotonic() + wait >= self.deadline:
                # also a request cut short by the deadline
                raise OpenAIFilesTimeoutError(f"{what}: time ran out; last attempt: {error}")
            log.warning(RETRY_LOG, attempt, policy.max_retries + 1, error, wait)
            await self.sleep(wait)
