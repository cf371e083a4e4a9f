"""The trigger behind ``OpenAIBatchOperator(deferrable=True)`` and ``OpenAIBatchSensor(deferrable=True)``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from airflow_openai_files.hooks import OpenAIFilesAsyncHook
from airflow_openai_files.hooks.poller import BATCHES
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.resources import batches
from airflow_openai_files.transfer.progress import Throttle
from airflow_openai_files.triggers.base import OpenAIPollingTrigger
from airflow_openai_files.validation import validate_id


class OpenAIBatchTrigger(OpenAIPollingTrigger):
    """
    Poll ``GET /batches/{batch_id}`` until the batch reaches a terminal status, or time runs out.

    Every status change is logged with the request counts, and so is progress while the status stays
    (``request_counts`` changed), at most one line per ``PROGRESS_INTERVAL`` seconds. Yields exactly one
    event::

        {"status": "success" | "error" | "timeout", "batch_id": ..., "batch": {...} | None, "message": ...,
         "request_counts": {...} | None}

    ``request_counts`` are the last counts seen (also on a timeout or a failed poll), so the task's log
    shows the last known state when it resumes.

    ``success`` when the batch ended in one of ``success_statuses``, ``error`` when it ended in
    another terminal status (the event still carries the Batch, so the task can land its error file)
    or a poll failed for good, ``timeout`` when ``timeout`` or ``deadline`` ran out first.

    :param batch_id: the ``batch_...`` id to watch.
    :param success_statuses: terminal statuses that count as success (``completed`` by default; the
        operator passes all four and judges the outcome itself).
    :param openai_conn_id: the ``openai_files`` connection (only its id is serialized, never the key).
    :param poll_interval: seconds between two checks.
    :param timeout: seconds to wait at most, on the monotonic clock from when ``run()`` starts.
    :param deadline: unix time after which to stop even if ``timeout`` has not run out.
    :param clock: the monotonic clock of the progress throttle (tests step it; never serialized).
    """

    resource = batches
    id_field = "batch_id"
    poll_kind = BATCHES
    event_key = "batch"
    #: Seconds between two progress lines while the counts keep changing.
    PROGRESS_INTERVAL = 60.0

    def __init__(
        self,
        batch_id: str,
        *,
        success_statuses: Any = batches.SUCCESS,
        openai_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 60.0,
        timeout: float = 25 * 3600.0,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(openai_conn_id=openai_conn_id, poll_interval=poll_interval, timeout=timeout, deadline=deadline)
        self.batch_id = validate_id(batch_id, batches.KIND)
        self.target = batches.check_target(success_statuses)
        self._progress = Throttle(self.PROGRESS_INTERVAL, clock)
        self._seen: tuple[Any, Any] | None = None  # (status, request_counts) last logged

    def fields(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "success_statuses": list(self.target)}

    async def fetch(self, hook: OpenAIFilesAsyncHook) -> dict[str, Any]:
        batch = await super().fetch(hook)  # the connection's shared poller answers
        self.log_progress(batch)
        return batch

    def log_progress(self, batch: dict[str, Any]) -> None:
        """
        A line when the counts changed while the status stayed, at most one per ``PROGRESS_INTERVAL``.

        A status change is logged by the base class (with the counts): it counts as the interval's line.
        """
        status, counts = batch.get("status"), batch.get("request_counts")
        seen, self._seen = self._seen, (status, counts)
        if seen is None or seen[0] != status or status in batches.TERMINAL:
            self._progress.restart()
            return
        if counts == seen[1]:
            return
        if not self._progress.ready():
            self._seen = seen  # not logged: the next poll compares with what the log last showed
            return
        self.log.info("%s", batches.describe(batch))

    @property
    def success_statuses(self) -> tuple[str, ...]:
        return self.target

    def payload(self, status: str, message: str, obj: dict[str, Any] | None) -> dict[str, Any]:
        return {**super().payload(status, message, obj), "request_counts": (obj or {}).get("request_counts")}
