"""
``OpenAIPollingTrigger``: the loop every polling trigger shares.

A subclass says only which object, how to fetch it and which resource module judges it::

    class OpenAIBatchTrigger(OpenAIPollingTrigger):
        resource = batches                     # judge(), describe(), not_found_message(), KIND
        id_field = "batch_id"                  # the attribute holding the id; the event carries it too
        event_key = "batch"                    # the event carries the object under this key

        def __init__(self, batch_id, *, success_statuses=("completed",), **kwargs):
            super().__init__(**kwargs)
            self.batch_id = validate_id(batch_id, batches.KIND)
            self.target = batches.check_target(success_statuses)

        def fields(self):                      # serialized next to conn id, poll interval, timeout, deadline
            return {"batch_id": self.batch_id, "success_statuses": list(self.target)}

        poll_kind = BATCHES                    # one poll: the connection's shared poller of batches answers
                                               # (hooks/poller.py), from a page of GET /batches when it can

The base class owns the rest: judging with ``resource.judge(obj, self.target)``, the monotonic deadline
(capped by a wall-clock ``deadline`` that survives a triggerer restart), the poll interval, exactly one
terminal event ``{"status": "success" | "error" | "timeout", <id_field>: ..., <event_key>: obj | None,
"message": ...}``, turning every failure into an ``error`` event (a 404 worded for the object by the transport), and the
serialize plumbing. Its twin on the worker is :func:`airflow_openai_files.hooks.waiting.wait_until`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesTimeoutError
from airflow_openai_files.hooks import OpenAIFilesAsyncHook
from airflow_openai_files.hooks.poller import PollKind, SharedPoller, shared_poller
from airflow_openai_files.hooks.waiting import timeout_message
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.resources import Verdict

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
        self._poller: SharedPoller | None = None
        self._due: float | None = None
        self._end: float | None = None
        self.openai_conn_id = openai_conn_id
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.deadline = float(deadline) if deadline is not None else time.time() + self.timeout

    # -- what a subclass says ---------------------------------------------------------------------------------

    #: The resource's rules module (:mod:`airflow_openai_files.resources`).
    resource: ModuleType
    #: The attribute holding the object's id (serialized by :meth:`fields`, carried by the event).
    id_field: ClassVar[str]
    #: The key of the event's payload that carries the object last fetched.
    event_key: ClassVar[str]
    #: The statuses that end the wait (``resource.check_target``); ``resource.SUCCESS`` unless set.
    target: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        """The subclass's own constructor arguments, to serialize (JSON-safe values, never a secret)."""
        raise NotImplementedError

    #: The kind of object, for the triggerer's shared poller of the connection (``hooks/poller.py``): triggers
    #: of one connection waiting for objects of one kind are answered together, from list pages where the API
    #: lists that kind. ``None``: the subclass's :meth:`fetch` polls on its own, through its own hook.
    poll_kind: ClassVar[PollKind | None] = None

    async def fetch(self, hook: OpenAIFilesAsyncHook) -> dict[str, Any]:
        """One poll: the object as the API returns it now (by default, the shared poller's answer for
        :attr:`object_id`, from a request sent after this call, at the latest one round after the poll is due)."""
        return await self.poll(self.object_id)

    async def poll(self, object_id: str) -> dict[str, Any]:
        """The shared poller's answer for one object of the class's ``poll_kind`` (for a :meth:`fetch` that
        waits on several objects)."""
        if self._poller is None:
            raise NotImplementedError(f"{type(self).__name__} sets no poll_kind: it must say how to fetch")
        return await self._poller.fetch(object_id, due=self._due, deadline=self._end)

    def extra_payload(self) -> dict[str, Any]:
        """More keys for the event (e.g. the last event id logged); none by default."""
        return {}

    # -- derived from the resource module --------------------------------------------------------------------

    @property
    def object_id(self) -> str:
        return str(getattr(self, self.id_field))

    def judge(self, obj: dict[str, Any]) -> Verdict:
        """The resource's verdict for the object as last fetched."""
        return self.resource.judge(obj, self.target or self.resource.SUCCESS)

    def payload(self, status: str, message: str, obj: dict[str, Any] | None) -> dict[str, Any]:
        """The event's payload; ``obj`` is the last object fetched, if any."""
        return {
            "status": status,
            self.id_field: self.object_id,
            self.event_key: obj,
            "message": message,
            **self.extra_payload(),
        }

    def describe_wait(self) -> str:
        """What the trigger waits for, in words (``"batch batch_abc to finish"``)."""
        return f"{self.resource.KIND} {self.object_id} to finish"

    def failure_message(self, err: OpenAIFilesError) -> str:
        """The message of the error event for a failed poll (the transport words a 404 for its object,
        with the resource module's ``not_found_message``)."""
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
        return timeout_message(time.monotonic() - started, self.describe_wait(), last)

    @asynccontextmanager
    async def _polling(self, end: float) -> AsyncIterator[OpenAIFilesAsyncHook]:
        """The hook :meth:`fetch` gets, and the shared poller of the connection when the class has a ``poll_kind``.

        With a poller, the hook is the poller's (open already: no connection lookup per trigger).
        """
        if self.poll_kind is None:
            async with OpenAIFilesAsyncHook(self.openai_conn_id, deadline=end) as hook:
                yield hook
            return
        async with shared_poller(self.openai_conn_id, self.poll_kind) as poller:
            self._poller = poller
            try:
                yield poller.hook
            finally:
                self._poller = None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        end = self._end = started + max(0.0, min(self.timeout, self.deadline - time.time()))
        self._due = started  # the first look: now
        last: dict[str, Any] | None = None
        message = "no answer yet"
        try:
            async with self._polling(end) as hook:
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
                    if self._poller is not None:
                        # The next look one interval from this answer; the poller's rounds pace the trigger.
                        self._due = min(time.monotonic() + self.poll_interval, end)
                    else:
                        await asyncio.sleep(min(self.poll_interval, remaining))
        except OpenAIFilesError as err:  # the connection, its TLS settings, or a poll that cannot heal
            yield self._event("error", self.failure_message(err), last)
