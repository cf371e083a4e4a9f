"""Wait for a vector store file batch to finish indexing (for DAGs that attach files themselves).

Modelled on :mod:`.batches` (the shared ``sensors/base.py`` of this round had not landed when it was written).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_openai_files._compat import AirflowException, AirflowFailException, AirflowSkipException, conf
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS, OpenAIFilesMixin
from airflow_openai_files.resources.vector_stores import describe_batch, file_counts, judge_batch, not_found_message

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFER_TIMEOUT_MARGIN = 60.0


def _batch_id(value: Any) -> str:
    """A ``vsfb_...`` id, or the id of a file batch dict (an upstream task's XCom)."""
    if isinstance(value, dict):
        value = value.get("batch_id") or value.get("id")
    return str(value)


class OpenAIVectorStoreFileBatchSensor(OpenAIFilesMixin, BaseSensorOperator):
    """
    Wait until a vector store file batch is ``completed`` and return it.

    Fails at once, without retries, when the batch ends ``failed`` or ``cancelled``, when it does not exist,
    or when more than ``max_failed_files`` of its files failed (the message names each with its
    ``last_error``). Works in ``poke`` / ``reschedule`` mode and with ``deferrable=True``
    (:class:`~airflow_openai_files.triggers.OpenAIVectorStoreFileBatchTrigger`).

    :param vector_store_id: the ``vs_...`` id (templated).
    :param batch_id: the ``vsfb_...`` id (templated), or a dict carrying ``id``.
    :param max_failed_files: files of the batch allowed to fail (``None``: any number).
    """

    template_fields: Sequence[str] = ("vector_store_id", "batch_id", *CONN_TEMPLATE_FIELDS)
    ui_color = "#c9e4de"

    def __init__(
        self,
        vector_store_id: str,
        batch_id: Any,
        *,
        max_failed_files: int | None = 0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 10.0,
        timeout: float = 3600.0,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(openai_conn_id=openai_conn_id, poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.vector_store_id = vector_store_id
        self.batch_id = batch_id
        self.max_failed_files = max_failed_files
        self.deferrable = deferrable

    def _check(self, batch: dict[str, Any]) -> None:
        outcome, message = judge_batch(batch)
        if outcome == "error":
            raise AirflowFailException(message)
        failed = file_counts(batch)["failed"]
        if outcome == "success" and self.max_failed_files is not None and failed > self.max_failed_files:
            from airflow_openai_files.resources.vector_stores import describe_file_error

            files = self.hook.list_vector_store_file_batch_files(
                self.vector_store_id, _batch_id(self.batch_id), status="failed"
            )
            listed = "; ".join(describe_file_error(item) for item in files)
            raise AirflowFailException(f"{message}; more than {self.max_failed_files} failed: {listed}")

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_openai_files.exceptions import OpenAIFilesError

        batch_id = _batch_id(self.batch_id)
        try:
            batch = self.hook.get_vector_store_file_batch(self.vector_store_id, batch_id)
        except OpenAIFilesError as err:
            if err.http_status == 404:
                raise AirflowFailException(not_found_message("File batch", batch_id, err.request_id)) from err
            raise
        self.log.info("%s", describe_batch(batch))
        self._check(batch)
        done = batch.get("status") == "completed"
        return PokeReturnValue(is_done=done, xcom_value=batch if done else None)

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
        from airflow_openai_files.triggers import OpenAIVectorStoreFileBatchTrigger

        self.defer(
            trigger=OpenAIVectorStoreFileBatchTrigger(
                self.vector_store_id,
                [_batch_id(self.batch_id)],
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
        batches = event.get("batches") or []
        if status == "timeout":
            raise AirflowSensorTimeout(str(event.get("message")))
        if not batches:
            raise AirflowFailException(str(event.get("message") or f"{self.task_id}: trigger reported {event!r}"))
        try:
            self._check(batches[0])
        except AirflowFailException as err:
            self._fail(err)
        return batches[0]

    def _fail(self, err: AirflowFailException) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(f"Skipping due to soft_fail: {err}") from err
        raise err
