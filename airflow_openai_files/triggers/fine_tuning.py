"""The trigger behind ``OpenAIFineTuningJobOperator(deferrable=True)`` and the deferrable job sensor.

Polls ``GET /fine_tuning/jobs/{id}`` from the triggerer and, at every poll, reads the job's new
events (newest first, stopping at the last one already logged) and logs them oldest first, so the
task's log shows status changes as they appear, and a summary of the step metrics at most once a
minute (every step's metrics at debug level), while no worker slot is held.
"""

from __future__ import annotations

from typing import Any

from airflow_openai_files.exceptions import OpenAIFilesError
from airflow_openai_files.hooks import OpenAIFilesAsyncHook
from airflow_openai_files.hooks.poller import FINE_TUNING_JOBS
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.resources import fine_tuning
from airflow_openai_files.resources.fine_tuning import unseen_events
from airflow_openai_files.transfer.progress import EventLog
from airflow_openai_files.triggers.base import OpenAIPollingTrigger
from airflow_openai_files.validation import validate_id

#: Events logged at most per poll (a first look at a long-running job shows its latest ones).
EVENTS_PER_POLL = 200


class OpenAIFineTuningJobTrigger(OpenAIPollingTrigger):
    """
    Poll a fine-tuning job until it ``succeeded``, ``failed`` or was ``cancelled``, or time runs out.

    Yields exactly one event (``error`` for a failed or cancelled job, with its message)::

        {"status": "success" | "error" | "timeout", "job_id": ..., "job": {...} | None,
         "message": ..., "last_event_id": ...}

    :param job_id: the ``ftjob-...`` id.
    :param last_event_id: the newest event already logged (by the worker before deferring); only
        later events are logged.
    :param cancel_on_kill: cancel the job when a user kills the deferred task (Airflow's trigger
        ``on_kill``; never on a triggerer restart or a timeout).
    :param openai_conn_id: the ``openai_files`` connection (only its id is serialized).
    :param poll_interval: seconds between two checks.
    :param timeout: seconds to wait at most.
    :param deadline: unix time after which to stop (survives a triggerer restart).
    """

    resource = fine_tuning
    id_field = "job_id"
    poll_kind = FINE_TUNING_JOBS
    event_key = "job"

    def __init__(
        self,
        job_id: str,
        *,
        last_event_id: str | None = None,
        cancel_on_kill: bool = False,
        openai_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 60.0,
        timeout: float = 7 * 24 * 3600.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__(openai_conn_id=openai_conn_id, poll_interval=poll_interval, timeout=timeout, deadline=deadline)
        self.job_id = validate_id(job_id, fine_tuning.KIND)
        self.last_event_id = last_event_id
        self.cancel_on_kill = bool(cancel_on_kill)
        #: Status messages at info, step metrics summarised at most once a minute (every step at debug).
        self.event_log: EventLog | None = None

    def fields(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "last_event_id": self.last_event_id, "cancel_on_kill": self.cancel_on_kill}

    async def fetch(self, hook: OpenAIFilesAsyncHook) -> dict[str, Any]:
        job = await super().fetch(hook)  # the connection's shared poller answers
        await self._log_new_events(hook, done=job.get("status") in fine_tuning.TERMINAL)
        return job

    async def _log_new_events(self, hook: OpenAIFilesAsyncHook, *, done: bool = False) -> None:
        """Read pages newest first until the last logged event; log what is new, oldest first."""
        collected: list[dict[str, Any]] = []
        after: str | None = None
        while len(collected) < EVENTS_PER_POLL:
            page = await hook.list_fine_tuning_events_page(self.job_id, after=after, limit=100)
            data = page.get("data") or []
            if any(event.get("id") == self.last_event_id for event in data) or not data:
                collected += data
                break
            collected += data
            if not page.get("has_more"):
                break
            after = data[-1].get("id")
        fresh = unseen_events(collected, self.last_event_id, EVENTS_PER_POLL)
        if self.event_log is None:  # built on first use: the logger is the trigger's at run time
            self.event_log = EventLog(self.log, self.job_id)
        self.event_log.record(fresh, done=done)
        if fresh:
            self.last_event_id = fresh[-1].get("id")

    def extra_payload(self) -> dict[str, Any]:
        return {"last_event_id": self.last_event_id}

    async def on_kill(self) -> None:
        """A user killed the deferred task: cancel the job when asked to (Airflow 3.2+ calls this)."""
        if not self.cancel_on_kill:
            return
        async with OpenAIFilesAsyncHook(self.openai_conn_id) as hook:
            try:
                job = await hook.cancel_fine_tuning_job(self.job_id)
            except OpenAIFilesError as err:
                self.log.warning("Could not cancel fine-tuning job %s: %s", self.job_id, err)
                return
        self.log.info("Task killed: cancelled fine-tuning job %s (status %s)", self.job_id, job.get("status"))
