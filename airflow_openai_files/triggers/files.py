"""The trigger behind ``OpenAIFileSensor(deferrable=True)``: polls a file's status from the triggerer."""

from __future__ import annotations

from typing import Any

from airflow_openai_files.hooks.poller import FILES
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.resources import files
from airflow_openai_files.triggers.base import OpenAIPollingTrigger
from airflow_openai_files.validation import validate_id


class OpenAIFileTrigger(OpenAIPollingTrigger):
    """
    Poll ``GET /files/{file_id}`` until the file reaches ``target_status``, fails, or time runs out.

    Uses the connection's key, headers and retry rules (the same as ``OpenAIFilesHook``) through
    ``OpenAIFilesAsyncHook``; nothing in ``run()`` blocks the event loop. Yields exactly one event::

        {"status": "success" | "error" | "timeout", "file_id": ..., "file": {...} | None, "message": ...}

    :param file_id: the ``file-...`` id to watch.
    :param openai_conn_id: the ``openai_files`` connection (only its id is serialized, never the key).
    :param target_status: ``processed`` (default) or ``uploaded``.
    :param poll_interval: seconds between two checks.
    :param timeout: seconds to wait at most, measured on the monotonic clock from when ``run()`` starts.
    :param deadline: unix time after which to stop even if ``timeout`` has not run out; it keeps the
        sensor's overall limit when a triggerer restart re-creates the trigger.
    """

    resource = files
    id_field = "file_id"
    poll_kind = FILES
    event_key = "file"

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
        super().__init__(openai_conn_id=openai_conn_id, poll_interval=poll_interval, timeout=timeout, deadline=deadline)
        self.file_id = validate_id(file_id, files.KIND)
        self.target = files.check_target(target_status)
        self.target_status = self.target[0]

    def fields(self) -> dict[str, Any]:
        return {"file_id": self.file_id, "target_status": self.target_status}

    def describe_wait(self) -> str:
        return f"{self.file_id} to become {self.target_status}"
