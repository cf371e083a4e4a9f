"""
``OpenAIPollingTrigger``: the loop every polling trigger shares.

A subclass says only how to fetch its object and how to judge it::

    class OpenAIBatchTrigger(OpenAIPollingTrigger):
        def __init__(self, batch_id, **kwargs):
            super().__init__(**kwargs)
            self.batch_id = validate_id(batch_id, "batch")

        def fields(self):                      # serialized next to conn id, poll interval, timeout, deadline
            return {"batch_id": self.batch_id}

        async def fetch(self, hook):           # one poll, through the shared async hook
            return await hook.get_batch(self.batch_id)

        def judge(self, batch):                # ("success" | "error" | "waiting", message)
            ...

        def payload(self, status, message, batch):   # the one event's payload
            return {"status": status, "batch_id": self.batch_id, "batch": batch, "message": message}

The base class owns the rest: the monotonic deadline (capped by a wall-clock ``deadline`` that survives a
triggerer restart), the poll interval, exactly one terminal event (``success``, ``error`` or
``timeout``), turning every failure into an ``error`` event, and the serialize plumbing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesTimeoutError
from airflow_openai_files.hooks import OpenAIFilesAsyncHook
from airflow_openai_files.limits import DEFAULT_CONN_ID

_PACKAGE = __name__.rsplit(".", 1)[0]  # airflow_openai_files.triggers


class OpenAIPollingTrigger(BaseTrigger):
    """
    Poll one object until :meth:`judge` says it is over, or time runs out; yield exactly one event.

    :param openai_conn_id: the ``openai_files`` connection (only its id is serialized, never the key).
    :param poll_interval: seconds between two checks.
    :param timeout: seconds to wait at most, measured on the monotonic clock from when ``run()`` starts.
    :param deadline: unix time after which to stop even if ``timeout`` has not run out; it keeps the
        sensor's overall limit when a triggerer restart re-creates the trigger.
    """

    def __init__(
        self,
        *,
        openai_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.openai_conn_id = openai_conn_id
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.deadline = float(deadline) if deadline is not None else time.time() + self.timeout

    # -- what a subclass says ---------------------------------------------------------------------------------

    def fields(self) -> dict[str, Any]:
        """The subclass's own constructor arguments, to serialize (JSON-safe values, never a secret)."""
        raise NotImplementedError

    async def fetch(self, hook: OpenAIFilesAsyncHook) -> dict[str, Any]:
        """One poll: the object as the API returns it now."""
        raise NotImplementedError

    def judge(self, obj: dict[str, Any]) -> tuple[str, str]:
        """``("success" | "error" | "waiting", message)`` for the object as last fetched."""
        raise NotImplementedError

    def payload(self, status: str, message: str, obj: dict[str, Any] | None) -> dict[str, Any]:
        """The event's payload; ``obj`` is the last object fetched, if any."""
        raise NotImplementedError

    def describe_wait(self) -> str:
        """What the trigger waits for, in words (``"file-abc to become processed"``)."""
        return "the object"

    def failure_message(self, err: OpenAIFilesError) -> str:
        """The message of the error event for a failed poll (a 404 is already worded for its object)."""
        return str(err)

    # -- the plumbing -----------------------------------------------------------------------------------------

    @classmethod
    def classpath(cls) -> str:
        """Where Airflow finds the class again: our triggers by the package, which re-exports each of them."""
        module = cls.__module__
        if module.startswith(_PACKAGE + "."):
            module = _PACKAGE
        return f"{module}.{cls.__qualname__}"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            self.classpath(),
            {
                **self.fields(),
                "openai_conn_id": self.openai_conn_id,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "deadline": self.deadline,
            },
        )

    def _event(self, status: str, message: str, obj: dict[str, Any] | None) -> TriggerEvent:
        return TriggerEvent(self.payload(status, message, obj))

    def _timeout_message(self, started: float, last: str) -> str:
        return f"Timed out after {time.monotonic() - started:.0f}s waiting for {self.describe_wait()} ({last})"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        end = started + max(0.0, min(self.timeout, self.deadline - time.time()))
        last: dict[str, Any] | None = None
        message = "no answer yet"
        try:
            async with OpenAIFilesAsyncHook(self.openai_conn_id, deadline=end) as hook:
                while True:
                    try:
                        obj = await self.fetch(hook)
                    except OpenAIFilesTimeoutError as why:
                        yield self._event("timeout", self._timeout_message(started, f"{message}; {why}"), last)
                        return
                    outcome, message = self.judge(obj)
                    if outcome != "waiting":
                        self.log.info("%s", message)
                        yield self._event(outcome, message, obj)
                        return
                    if last is None or obj.get("status") != last.get("status"):
                        self.log.info("%s", message)
                    last = obj
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        yield self._event("timeout", self._timeout_message(started, message), obj)
                        return
                    await asyncio.sleep(min(self.poll_interval, remaining))
        except OpenAIFilesError as err:  # the connection, its TLS settings, or a poll that cannot heal
            yield self._event("error", self.failure_message(err), last)
