"""Wait for a batch created elsewhere (another DAG, a script, the service's UI) to finish."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_openai_files._compat import AirflowException, AirflowFailException, AirflowSkipException, conf
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS, OpenAIFilesMixin
from airflow_openai_files.resources.batches import (
    TERMINAL_STATUSES,
    batch_errors,
    check_success_statuses,
    describe_batch,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFER_TIMEOUT_MARGIN = 60.0


def _batch_id(value: Any) -> str:
    """A ``batch_...`` id, or the id of a Batch dict (``batch.output`` of an operator)."""
    if isinstance(value, dict):
        value = value.get("batch_id") or value.get("id")
    return str(value)


class OpenAIBatchSensor(OpenAIFilesMixin, BaseSensorOperator):
    """
    Wait until a batch reaches a terminal status and return its Batch object.

    Succeeds when the batch ends in one of ``success_statuses`` (``completed`` by default); fails at
    once, without retries, when it ends in another terminal status (``failed``: the message lists the
    service's ``errors.data``) or does not exist. With ``soft_fail=True`` those and a timeout skip the
    task instead. Works in ``mode="poke"``, ``mode="reschedule"`` and ``deferrable=True`` (one check on
    the worker, then :class:`~airflow_openai_files.triggers.OpenAIBatchTrigger` in the triggerer).

    :param batch_id: the ``batch_...`` id (templated), or a dict carrying ``batch_id`` / ``id``.
    :param success_statuses: terminal statuses that count as success, e.g. ``("completed", "expired")``.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poke_interval: seconds between two checks.
    :param timeout: seconds to wait at most (25 hours by default: the 24h window and finalizing).
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    template_fields: Sequence[str] = ("batch_id", *CONN_TEMPLATE_FIELDS)
    ui_color = "#d2b4de"

    def __init__(
        self,
        batch_id: Any,
        *,
        success_statuses: Sequence[str] = ("completed",),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 60.0,
        timeout: float = 25 * 3600,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)  # ``wait.output["output_file_id"]`` works downstream
        super().__init__(openai_conn_id=openai_conn_id, poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.batch_id = batch_id
        try:
            self.success_statuses = check_success_statuses(success_statuses)
        except ValueError as err:
            raise AirflowFailException(f"{self.task_id}: {err}") from None
        self.deferrable = deferrable

    def poke(self, context: Context) -> PokeReturnValue:
        batch_id = _batch_id(self.batch_id)
        # A missing object is an OpenAIFilesNotFoundError (final, worded for it): it fails the task.
        batch = self.hook.get_batch(batch_id)
        message = describe_batch(batch)
        self.log.info("%s", message)
        status = batch.get("status")
        if status in TERMINAL_STATUSES and status not in self.success_statuses:
            raise AirflowFailException(self._ended_message(batch))
        done = status in self.success_statuses
        return PokeReturnValue(is_done=done, xcom_value=batch if done else None)

    @staticmethod
    def _ended_message(batch: dict[str, Any]) -> str:
        message = describe_batch(batch)
        if batch.get("status") == "failed":
            message += f"; errors: {batch_errors(batch)}"
        return message

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
        from airflow_openai_files.triggers import OpenAIBatchTrigger

        batch_id = _batch_id(self.batch_id)
        self.log.info("Deferring: the triggerer checks %s every %.0fs", batch_id, self.poke_interval)
        self.defer(
            trigger=OpenAIBatchTrigger(
                batch_id,
                success_statuses=self.success_statuses,
                openai_conn_id=self.openai_conn_id,
                poll_interval=self.poke_interval,
                timeout=self.timeout,
                deadline=started + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_MARGIN),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        from airflow_openai_files._compat import AirflowSensorTimeout

        if not event:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event")
        status = event.get("status")
        batch = event.get("batch")
        if status == "success":
            return batch
        if status == "timeout":
            raise AirflowSensorTimeout(str(event.get("message")))
        if batch and batch.get("status") in TERMINAL_STATUSES:
            self._fail(AirflowFailException(self._ended_message(batch)))
        raise AirflowFailException(str(event.get("message") or f"{self.task_id}: trigger reported {event!r}"))

    def _fail(self, err: AirflowFailException) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(f"Skipping due to soft_fail: {err}") from err
        raise err
