"""Wait for a fine-tuning job created elsewhere (another DAG, a notebook, the console) to finish."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS
from airflow_openai_files.resources import fine_tuning
from airflow_openai_files.sensors.base import OpenAIBaseSensor
from airflow_openai_files.transfer.progress import EventLog

#: Events logged at most per check (a first look at a long-running job shows its latest ones).
EVENTS_PER_POKE = 200


class OpenAIFineTuningJobSensor(OpenAIBaseSensor):
    """
    Wait until a fine-tuning job ``succeeded`` and return the job object.

    Logs status changes and the job's new events (step metrics) at every check. Fails at once,
    without retries, when the job ``failed`` (with its ``error``: code, message, param, line) or was
    ``cancelled``, or does not exist; with ``soft_fail=True`` those and a timeout skip the task.
    Works in ``mode="poke"``, ``mode="reschedule"`` and ``deferrable=True`` (through
    :class:`~airflow_openai_files.triggers.OpenAIFineTuningJobTrigger`), and with
    ``start_from_trigger=True`` (see :class:`~airflow_openai_files.sensors.base.OpenAIBaseSensor`).
    It never cancels the job.

    :param job_id: the ``ftjob-...`` id (templated); a job dict or the job operator's summary is accepted too.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poke_interval: seconds between two checks (60).
    :param timeout: seconds to wait at most (seven days).
    :param start_from_trigger: start the wait in the triggerer (Airflow 3.3+, literal arguments).
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    resource = fine_tuning
    trigger_class = "airflow_openai_files.triggers.OpenAIFineTuningJobTrigger"
    id_field = "job_id"
    event_key = "job"
    default_poke_interval = 60.0
    default_timeout = 7 * 24 * 3600.0

    template_fields: Sequence[str] = ("job_id", *CONN_TEMPLATE_FIELDS)
    ui_color = "#ebdef0"

    def __init__(self, job_id: Any, **kwargs: Any) -> None:
        self.job_id = job_id
        self._last_event_id: str | None = None
        self._event_log: EventLog | None = None
        super().__init__(**kwargs)

    def fetch(self, object_id: str) -> dict[str, Any]:
        """The job, after logging its events since the last check (oldest first)."""
        job = self.hook.get_fine_tuning_job(object_id)
        fresh = fine_tuning.unseen_events(
            self.hook.list_fine_tuning_events(object_id, page_size=100), self._last_event_id, EVENTS_PER_POKE
        )
        if self._event_log is None or self._event_log.job_id != object_id:
            self._event_log = EventLog(self.log, object_id)
        self._event_log.record(fresh, done=job.get("status") in fine_tuning.TERMINAL)
        if fresh:
            self._last_event_id = fresh[-1].get("id")
        return job

    def trigger_kwargs(self, object_id: str, target: tuple[str, ...]) -> dict[str, Any]:
        return {"job_id": object_id, "last_event_id": self._last_event_id, "cancel_on_kill": False}
