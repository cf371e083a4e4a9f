"""The trigger a sharded ``OpenAIBatchOperator`` waits on: every in-flight batch of the job, in one poll loop."""

from __future__ import annotations

import time
from typing import Any

from airflow_openai_files.hooks import OpenAIFilesAsyncHook
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.resources import Verdict, batches
from airflow_openai_files.resources.batches import TERMINAL, describe_shards
from airflow_openai_files.triggers.base import OpenAIPollingTrigger
from airflow_openai_files.validation import validate_id


class OpenAIBatchShardsTrigger(OpenAIPollingTrigger):
    """
    Poll the in-flight batches of a sharded job; fire when the worker has something to do.

    One event, ``{"status": "success" | "error" | "timeout", "batches": {id: Batch}, "job": ..., "message"}``:
    ``success`` as soon as one batch is in a terminal status (its results are to collect, a queued shard may
    now fit), or ``wake_at`` has passed (a backed-off shard's turn), ``error`` when a poll failed for good,
    ``timeout`` when the job's time ran out. Progress across all shards (finished / in flight, requests done,
    succeeded and failed) is logged at every poll, so the task log shows it while the task is deferred.

    :param batch_ids: the job's in-flight ``batch_...`` ids (may be empty while every shard waits for backoff).
    :param job: the job's state (JSON), handed back in the event so a task without a state store resumes it.
    :param wake_at: unix time at which to fire even if no batch changed (None: only on a change).
    :param answered: ``(completed, failed)`` requests of the shards already finished, for the progress line.
    :param total_lines: requests in the job; ``shards`` / ``finished``: shard counts, for the progress line.
    """

    resource = batches
    id_field = "batch_ids"
    event_key = "batches"

    def __init__(
        self,
        batch_ids: list[str],
        *,
        job: dict[str, Any] | None = None,
        wake_at: float | None = None,
        answered: tuple[int, int] | list[int] = (0, 0),
        total_lines: int = 0,
        shards: int = 0,
        finished: int = 0,
        openai_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 60.0,
        timeout: float = 25 * 3600.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__(openai_conn_id=openai_conn_id, poll_interval=poll_interval, timeout=timeout, deadline=deadline)
        self.batch_ids = [validate_id(batch_id, "batch") for batch_id in batch_ids]
        self.job = job
        self.wake_at = float(wake_at) if wake_at is not None else None
        self.answered = (int(answered[0]), int(answered[1]))
        self.total_lines = int(total_lines)
        self.shards = int(shards)
        self.finished = int(finished)

    def fields(self) -> dict[str, Any]:
        return {
            "batch_ids": list(self.batch_ids),
            "job": self.job,
            "wake_at": self.wake_at,
            "answered": list(self.answered),
            "total_lines": self.total_lines,
            "shards": self.shards,
            "finished": self.finished,
        }

    async def fetch(self, hook: OpenAIFilesAsyncHook) -> dict[str, Any]:
        batches = {batch_id: await hook.get_batch(batch_id) for batch_id in self.batch_ids}
        ended = sorted(batch_id for batch_id, batch in batches.items() if batch.get("status") in TERMINAL)
        progress = describe_shards(list(batches.values()), self.answered, self.total_lines, self.shards, self.finished)
        # A constant "status": the base loop would log a change; judge() logs the progress at every poll instead.
        return {"status": "polling", "progress": progress, "batches": batches, "ended": ended}

    def judge(self, obj: dict[str, Any]) -> Verdict:
        message = str(obj["progress"])
        self.log.info("%s", message)  # at every poll: the on-call person sees the job move while it is deferred
        if obj["ended"]:
            return Verdict("success", f"{message}; ended: {', '.join(obj['ended'])}")
        if self.wake_at is not None and time.time() >= self.wake_at:
            return Verdict("success", f"{message}; a queued shard's turn has come")
        return Verdict("waiting", message)

    def payload(self, status: str, message: str, obj: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "status": status,
            "batches": (obj or {}).get("batches") or {},
            "job": self.job,
            "message": message,
        }

    def describe_wait(self) -> str:
        return f"{len(self.batch_ids)} batches of a sharded job"
