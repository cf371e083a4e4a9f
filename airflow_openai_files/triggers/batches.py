"""The trigger behind ``OpenAIBatchOperator(deferrable=True)`` and ``OpenAIBatchSensor(deferrable=True)``."""

from __future__ import annotations

from typing import Any

from airflow_openai_files.hooks import OpenAIFilesAsyncHook
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.resources import batches
from airflow_openai_files.triggers.base import OpenAIPollingTrigger
from airflow_openai_files.validation import validate_id


class OpenAIBatchTrigger(OpenAIPollingTrigger):
    """
    Poll ``GET /batches/{batch_id}`` until the batch reaches a terminal status, or time runs out.

    Every status change is logged with the request counts. Yields exactly one event::

        {"status": "success" | "error" | "timeout", "batch_id": ..., "batch": {...} | None, "message": ...}

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
    """

    resource = batches
    id_field = "batch_id"
    event_key = "batch"

    def __init__(
        self,
        batch_id: str,
        *,
        success_statuses: Any = batches.SUCCESS,
        openai_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 60.0,
        timeout: float = 25 * 3600.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__(openai_conn_id=openai_conn_id, poll_interval=poll_interval, timeout=timeout, deadline=deadline)
        self.batch_id = validate_id(batch_id, batches.KIND)
        self.target = batches.check_target(success_statuses)

    @property
    def success_statuses(self) -> tuple[str, ...]:
        return self.target

    def fields(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "success_statuses": list(self.target)}

    async def fetch(self, hook: OpenAIFilesAsyncHook) -> dict[str, Any]:
        return await hook.get_batch(self.batch_id)
