"""Wait for an uploaded file to be processed before a fine-tune job or a batch uses it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_openai_files._compat import AirflowException, AirflowFailException, AirflowSkipException, conf
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS, OpenAIFilesMixin
from airflow_openai_files.status import check_target_status, evaluate, extract_file_id, not_found_message

if TYPE_CHECKING:
    from airflow.sdk import Context

# A backstop for the scheduler's deferral timeout, so the trigger's own (clearer) timeout event wins.
DEFER_TIMEOUT_MARGIN = 60.0


class OpenAIFileSensor(OpenAIFilesMixin, BaseSensorOperator):
    """
    Wait until a file reaches ``target_status`` (``processed`` by default) and return its File object.

    Fails at once, without retries, when the file ends in ``error`` (the message carries its
    ``status_details``) or does not exist (HTTP 404); with ``soft_fail=True`` those and a timeout
    skip the task instead. Works in ``mode="poke"``, ``mode="reschedule"`` and ``deferrable=True``
    (one check on the worker, then :class:`~airflow_openai_files.triggers.OpenAIFileTrigger` in the
    triggerer).

    :param file_id: the ``file-...`` id (templated), e.g. ``upload.output["id"]``; a File dict is accepted too.
    :param target_status: ``processed`` or ``uploaded``.
    :param deferrable: wait in the triggerer instead of holding a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param poke_interval: seconds between two checks.
    :param timeout: seconds to wait at most.
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    template_fields: Sequence[str] = ("file_id", "target_status", *CONN_TEMPLATE_FIELDS)
    ui_color = "#d5f5e3"

    def __init__(
        self,
        file_id: Any,
        *,
        target_status: str = "processed",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 10.0,
        timeout: float = 60 * 60,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)  # ``wait.output["status"]`` works downstream
        super().__init__(openai_conn_id=openai_conn_id, poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.file_id = file_id
        self.target_status = target_status
        self.deferrable = deferrable

    def _target(self) -> str:
        try:
            return check_target_status(self.target_status)
        except ValueError as err:
            raise AirflowFailException(f"{self.task_id}: {err}") from None

    def _file_id(self) -> str:
        return str(extract_file_id(self.file_id))

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_openai_files.exceptions import OpenAIFilesError

        file_id = self._file_id()
        target = self._target()
        try:
            file = self.hook.get_file(file_id)
        except OpenAIFilesError as err:
            if err.http_status == 404:
                raise AirflowFailException(not_found_message(file_id, err.request_id)) from err
            raise
        outcome, message = evaluate(file, target)
        if outcome == "error":
            raise AirflowFailException(message)
        self.log.info("%s", message)
        return PokeReturnValue(is_done=outcome == "success", xcom_value=file if outcome == "success" else None)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started = time.time()
        try:
            first = self.poke(context)
        except AirflowFailException as err:
            self._fail(err)
        if first.is_done:
            self.log.info("Success criteria met. Exiting.")
            return first.xcom_value
        from airflow_openai_files.triggers import OpenAIFileTrigger

        self.log.info(
            "Deferring: the triggerer checks %s every %.0fs for up to %.0fs",
            self._file_id(),
            self.poke_interval,
            self.timeout,
        )
        self.defer(
            trigger=OpenAIFileTrigger(
                self._file_id(),
                openai_conn_id=self.openai_conn_id,
                target_status=self._target(),
                poll_interval=self.poke_interval,
                timeout=self.timeout,
                deadline=started + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_MARGIN),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired; ``resume_execution`` turns failures into skips under ``soft_fail``."""
        from airflow.sdk.exceptions import AirflowSensorTimeout

        if not event:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event")
        status = event.get("status")
        message = str(event.get("message") or "")
        if status == "success":
            self.log.info("%s", message)
            return event.get("file")
        if status == "timeout":
            raise AirflowSensorTimeout(message)
        raise AirflowFailException(message or f"{self.task_id}: trigger reported {event!r}")

    def _fail(self, err: AirflowFailException) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(f"Skipping due to soft_fail: {err}") from err
        if getattr(self, "never_fail", False):
            raise AirflowSkipException(f"Skipping due to never_fail: {err}") from err
        raise err
