"""Wait for a fine-tuning job created elsewhere (another DAG, a notebook, the console) to finish."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_openai_files._compat import AirflowException, AirflowFailException, AirflowSkipException, conf
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS, OpenAIFilesMixin
from airflow_openai_files.resources.fine_tuning import format_event, judge_job, unseen_events

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFER_TIMEOUT_MARGIN = 60.0
EVENTS_PER_POKE = 200


class OpenAIFineTuningJobSensor(OpenAIFilesMixin, BaseSensorOperator):
    """
    Wait until a fine-tuning job ``succeeded`` and return the job object.

    Logs status changes and the job's new events (step metrics) at every check. Fails at once,
    without retries, when the job ``failed`` (with its ``error``: code, message, param, line) or was
    ``cancelled``, or does not exist; with ``soft_fail=True`` those and a timeout skip the task.
    Works in ``mode="poke"``, ``mode="reschedule"`` and ``deferrable=True`` (through
    :class:`~airflow_openai_files.triggers.OpenAIFineTuningJobTrigger`). It never cancels the job.

    :param job_id: the ``ftjob-...`` id (templated); a job dict is accepted too.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poke_interval: seconds between two checks.
    :param timeout: seconds to wait at most.
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    template_fields: Sequence[str] = ("job_id", *CONN_TEMPLATE_FIELDS)
    ui_color = "#ebdef0"

    def __init__(
        self,
        job_id: Any,
        *,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 60.0,
        timeout: float = 7 * 24 * 3600,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)  # ``wait.output["fine_tuned_model"]`` works downstream
        super().__init__(openai_conn_id=openai_conn_id, poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.job_id = job_id
        self.deferrable = deferrable
        self._last_event_id: str | None = None

    def _job_id(self) -> str:
        value = self.job_id.get("id") if isinstance(self.job_id, dict) else self.job_id
        return str(value).strip()

    def poke(self, context: Context) -> PokeReturnValue:
        job_id = self._job_id()
        # A missing object is an OpenAIFilesNotFoundError (final, worded for it): it fails the task.
        job = self.hook.get_fine_tuning_job(job_id)
        fresh = unseen_events(
            self.hook.list_fine_tuning_events(job_id, page_size=100), self._last_event_id, EVENTS_PER_POKE
        )
        for event in fresh:
            self.log.info("%s: %s", job_id, format_event(event))
        if fresh:
            self._last_event_id = fresh[-1].get("id")
        outcome, message = judge_job(job)
        self.log.info("%s", message)
        if outcome in ("error", "cancelled"):
            raise AirflowFailException(message)
        return PokeReturnValue(is_done=outcome == "success", xcom_value=job if outcome == "success" else None)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started = time.time()
        try:
            first = self.poke(context)
        except AirflowFailException as err:
            self._fail(err)
        if first.is_done:
            return first.xcom_value
        from airflow_openai_files.triggers import OpenAIFineTuningJobTrigger

        self.log.info(
            "Deferring: the triggerer checks %s every %.0fs for up to %.0fs",
            self._job_id(),
            self.poke_interval,
            self.timeout,
        )
        self.defer(
            trigger=OpenAIFineTuningJobTrigger(
                self._job_id(),
                last_event_id=self._last_event_id,
                cancel_on_kill=False,
                openai_conn_id=self.openai_conn_id,
                poll_interval=self.poke_interval,
                timeout=self.timeout,
                deadline=started + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_MARGIN),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired; ``resume_execution`` turns failures into skips under ``soft_fail``."""
        from airflow_openai_files._compat import AirflowSensorTimeout

        if not event:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event")
        status = event.get("status")
        message = str(event.get("message") or "")
        if status == "success":
            self.log.info("%s", message)
            return event.get("job")
        if status == "timeout":
            raise AirflowSensorTimeout(message)
        raise AirflowFailException(message or f"{self.task_id}: trigger reported {event!r}")

    def _fail(self, err: AirflowFailException) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(f"Skipping due to soft_fail: {err}") from err
        raise err
