"""The trigger behind ``OpenAIFileSensor(deferrable=True)``: polls a file's status from the triggerer."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_openai_files._retry import RetryableError, RetryPolicy, classify, json_object
from airflow_openai_files._settings import ClientSettings, parse_settings
from airflow_openai_files.exceptions import OpenAIFilesConfigError, OpenAIFilesError
from airflow_openai_files.hooks import validate_file_id
from airflow_openai_files.status import check_target_status, evaluate, not_found_message

if TYPE_CHECKING:
    from airflow.sdk import Connection

DEFAULT_CONN_ID = "openai_files_default"


# Connection lookups in flight, per connection id: triggers that start together (a triggerer picking up
# hundreds at once) share one lookup instead of each running Airflow's secrets-backend code in turn.
_LOOKUPS: dict[str, asyncio.Task[ClientSettings]] = {}


_SSL_CONTEXTS: dict[bool | str, ssl.SSLContext | bool] = {}


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
    if verify not in _SSL_CONTEXTS:
        _SSL_CONTEXTS[verify] = await asyncio.to_thread(_build_ssl_context, verify)
    return _SSL_CONTEXTS[verify]


def _forget_lookup(conn_id: str, done: asyncio.Task[ClientSettings]) -> None:
    if _LOOKUPS.get(conn_id) is done:
        del _LOOKUPS[conn_id]


class _DeadlineReached(Exception):
    """The trigger's timeout ran out while waiting for an answer or a retry."""


class OpenAIFileTrigger(BaseTrigger):
    """
    Poll ``GET /files/{file_id}`` until the file reaches ``target_status``, fails, or time runs out.

    Uses the connection's key, headers and retry rules (the same as ``OpenAIFilesHook``) over an
    ``httpx.AsyncClient``; nothing in ``run()`` blocks the event loop. Yields exactly one event::

        {"status": "success" | "error" | "timeout", "file_id": ..., "file": {...} | None, "message": ...}

    :param file_id: the ``file-...`` id to watch.
    :param openai_conn_id: the ``openai_files`` connection (only its id is serialized, never the key).
    :param target_status: ``processed`` (default) or ``uploaded``.
    :param poll_interval: seconds between two checks.
    :param timeout: seconds to wait at most, measured on the monotonic clock from when ``run()`` starts.
    :param deadline: unix time after which to stop even if ``timeout`` has not run out; it keeps the
        sensor's overall limit when a triggerer restart re-creates the trigger.
    """

    def __init__(
        self,
        file_id: str,
        *,
        openai_conn_id: str = DEFAULT_CONN_ID,
        target_status: str = "processed",
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.file_id = validate_file_id(file_id)
        self.openai_conn_id = openai_conn_id
        self.target_status = check_target_status(target_status)
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.deadline = float(deadline) if deadline is not None else time.time() + self.timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "file_id": self.file_id,
                "openai_conn_id": self.openai_conn_id,
                "target_status": self.target_status,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "deadline": self.deadline,
            },
        )

    def _event(self, status: str, message: str, file: dict[str, Any] | None = None) -> TriggerEvent:
        return TriggerEvent({"status": status, "file_id": self.file_id, "file": file, "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        budget = max(0.0, min(self.timeout, self.deadline - time.time()))
        end = started + budget
        try:
            settings = await self._shared_settings()
        except OpenAIFilesError as err:
            yield self._event("error", str(err))
            return
        policy = RetryPolicy(max_retries=settings.max_retries)
        try:
            verify = await _ssl_context(settings.verify)
        except (OSError, ssl.SSLError) as err:
            yield self._event("error", f"Connection {self.openai_conn_id!r}: field 'verify' is unusable: {err}")
            return
        last: dict[str, Any] | None = None
        message = "no answer yet"
        async with httpx.AsyncClient(
            headers=settings.headers(),
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            verify=verify,
        ) as client:
            while True:
                try:
                    file = await self._get_file(client, settings, policy, end)
                except _DeadlineReached as why:
                    yield self._event("timeout", self._timeout_message(started, f"{message}; {why}"), last)
                    return
                except OpenAIFilesError as err:
                    if err.status_code == 404:
                        yield self._event("error", not_found_message(self.file_id, err.request_id), last)
                    else:
                        yield self._event("error", str(err), last)
                    return
                outcome, message = evaluate(file, self.target_status)
                if outcome != "waiting":
                    self.log.info("%s", message)
                    yield self._event(outcome, message, file)
                    return
                if last is None or file.get("status") != last.get("status"):
                    self.log.info("%s", message)
                last = file
                remaining = end - time.monotonic()
                if remaining <= 0:
                    yield self._event("timeout", self._timeout_message(started, message), file)
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))

    def _timeout_message(self, started: float, last: str) -> str:
        return (
            f"Timed out after {time.monotonic() - started:.0f}s waiting for {self.file_id} to become "
            f"{self.target_status} ({last})"
        )

    async def _shared_settings(self) -> ClientSettings:
        """The connection's settings, sharing a lookup already in flight for the same connection id."""
        loop = asyncio.get_running_loop()
        pending = _LOOKUPS.get(self.openai_conn_id)
        if pending is None or pending.get_loop() is not loop:
            pending = loop.create_task(self._settings())
            _LOOKUPS[self.openai_conn_id] = pending
            pending.add_done_callback(functools.partial(_forget_lookup, self.openai_conn_id))
        # shield: one trigger being cancelled must not cancel the lookup the others wait for.
        return await asyncio.shield(pending)

    async def _settings(self) -> ClientSettings:
        """Read the connection without blocking the event loop (``BaseHook.aget_connection``)."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn: Connection = await BaseHook.aget_connection(self.openai_conn_id)
        except AirflowNotFoundException:
            raise OpenAIFilesConfigError(
                f"Connection {self.openai_conn_id!r} is not defined: create an 'openai_files' connection in "
                f"the UI or set AIRFLOW_CONN_{self.openai_conn_id.upper()}"
            ) from None
        try:
            aextra = getattr(conn, "aextra_dejson", None)
            extra = (await aextra()) if aextra is not None else conn.extra_dejson
        except Exception:
            raise OpenAIFilesConfigError(
                f"Connection {self.openai_conn_id!r}: field 'extra' is not valid JSON"
            ) from None
        settings = parse_settings(
            self.openai_conn_id,
            host=conn.host,
            password=conn.password,
            extra=extra or {},
            port=conn.port,
            schema=conn.schema,
        )
        try:
            from airflow.sdk.log import amask_secret
        except ImportError:  # pragma: no cover - older task SDKs
            return settings
        await amask_secret(settings.api_key)
        return settings

    async def _get_file(
        self, client: httpx.AsyncClient, settings: ClientSettings, policy: RetryPolicy, end: float
    ) -> dict[str, Any]:
        """``GET /files/{id}`` under the hook's retry rules; waits are ``asyncio.sleep``, bounded by ``end``."""
        what = f"Retrieving {self.file_id}"
        url = settings.url(f"files/{self.file_id}")
        attempt = 0
        while True:
            attempt += 1
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise _DeadlineReached("time ran out before the next check")
            # The request's own timeouts end it by the deadline. Not asyncio.wait_for: before Python 3.12 it can
            # swallow a cancellation that arrives as the answer does, and the triggerer cancels triggers.
            limit = min(settings.timeout, remaining)
            try:
                response = await client.get(
                    url, timeout=httpx.Timeout(limit, connect=min(settings.connect_timeout, limit))
                )
            except httpx.TransportError as exc:  # connection refused or dropped, read/connect timeouts
                if isinstance(exc, httpx.UnsupportedProtocol):
                    raise OpenAIFilesError(f"{what} failed: {exc}") from exc
                error: OpenAIFilesError = RetryableError(f"{what} failed: {type(exc).__name__}: {exc}")
            else:
                if response.status_code < 400:
                    return self._parse(response, what)
                error = classify(response.status_code, response.headers, response.content[:65536], what=what)
            if not isinstance(error, RetryableError) or attempt > policy.max_retries:
                if isinstance(error, RetryableError):
                    raise error.reworded(f"{error.message}; gave up after {attempt} attempt(s)")
                raise error
            wait = policy.wait_for(attempt, error.retry_after)
            if time.monotonic() + wait >= end:  # also a request cut short by the deadline
                raise _DeadlineReached(f"last attempt: {error}")
            self.log.warning(
                "Attempt %d of %d failed (%s); retrying in %.2fs", attempt, policy.max_retries + 1, error, wait
            )
            await asyncio.sleep(wait)

    @staticmethod
    def _parse(response: httpx.Response, what: str) -> dict[str, Any]:
        return json_object(response.json, what, response.headers)
