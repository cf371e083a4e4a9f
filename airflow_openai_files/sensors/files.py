"""Wait for an uploaded file to be processed before a fine-tune job or a batch uses it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_openai_files._compat import AirflowException, AirflowFailException, AirflowSkipException, conf
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS, OpenAIFilesMixin, id_from
from airflow_openai_files.resources.files import check_target_status, evaluate

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
    :param start_from_trigger: with ``deferrable=True`` on Airflow 3.3+, start the wait in the
        triggerer directly, without a worker slot even for the first check (the task comes to a
        worker only to return the File). Needs literal ``file_id``, ``target_status`` and
        ``openai_conn_id`` (no template, no XCom): otherwise, and on Airflow 3.1/3.2 whose scheduler
        ignores it, the sensor defers from the worker as usual and logs why.
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    #: Class default (Airflow's scheduler reads it); instances that can start in the triggerer set it.
    start_from_trigger = False

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
        start_from_trigger: bool = False,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)  # ``wait.output["status"]`` works downstream
        super().__init__(openai_conn_id=openai_conn_id, poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.file_id = file_id
        self.target_status = target_status
        self.deferrable = deferrable
        self._last_seen = ""  # the last check's message, for a timeout that names the file and its status
        self.start_from_trigger_note = ""
        if start_from_trigger:
            self._start_from_trigger(deferrable)

    def _start_from_trigger(self, deferrable: bool) -> None:
        """Set ``start_from_trigger`` and ``start_trigger_args`` where the running Airflow honours them."""
        from airflow_openai_files._compat import SUPPORTS_START_FROM_TRIGGER
        from airflow_openai_files.validation import is_templated

        values = (self.file_id, self.target_status, self.openai_conn_id)
        if not deferrable:
            reason = "it needs deferrable=True"
        elif any(is_templated(v) or not isinstance(v, (str, dict)) for v in values):
            reason = "file_id, target_status and openai_conn_id must be literal (no template or XCom)"
        elif not SUPPORTS_START_FROM_TRIGGER:
            reason = "this Airflow's scheduler ignores it (Airflow 3.3+ honours it)"
        else:
            from airflow.triggers.base import StartTriggerArgs

            self.start_trigger_args = StartTriggerArgs(
                trigger_cls="airflow_openai_files.triggers.files.OpenAIFileTrigger",
                trigger_kwargs={
                    "file_id": self._file_id(),
                    "openai_conn_id": self.openai_conn_id,
                    "target_status": self._target(),
                    "poll_interval": self.poke_interval,
                    "timeout": self.timeout,
                },
                next_method="execute_complete",
                next_kwargs=None,
                timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_MARGIN),
            )
            self.start_from_trigger = True
            return
        self.start_from_trigger_note = f"start_from_trigger not used: {reason}; deferring from the worker instead"

    def _target(self) -> str:
        try:
            return check_target_status(self.target_status)
        except ValueError as err:
            raise AirflowFailException(f"{self.task_id}: {err}") from None

    def _file_id(self) -> str:
        return self.check_at_run(id_from, self.file_id)

    def poke(self, context: Context) -> PokeReturnValue:
        file_id = self._file_id()
        target = self._target()
        # A missing object is an OpenAIFilesNotFoundError (final, worded for it): it fails the task.
        file = self.hook.get_file(file_id)
        outcome, message = evaluate(file, target)
        if outcome == "error":
            raise AirflowFailException(message)
        self._last_seen = message
        self.log.info("%s", message)
        return PokeReturnValue(is_done=outcome == "success", xcom_value=file if outcome == "success" else None)

    def execute(self, context: Context) -> Any:
        if self.start_from_trigger_note:
            self.log.info("%s", self.start_from_trigger_note)
        if not self.deferrable:
            return self._wait_on_worker(context)
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

    def _wait_on_worker(self, context: Context) -> Any:
        """Poke / reschedule mode; a timeout names the file and its status at the last check."""
        from airflow_openai_files._compat import AirflowSensorTimeout

        try:
            return super().execute(context)
        except (AirflowSensorTimeout, AirflowSkipException) as err:
            if not str(err).startswith("Sensor has timed out") or not self._last_seen:
                raise
            raise type(err)(f"{err} Last check: {self._last_seen}.") from err

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        from airflow_openai_files._compat import AirflowSensorTimeout

        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as err:
            # Airflow 3.1 turns the scheduler's deferral timeout into a sensor timeout past soft_fail.
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {err}") from err
            raise

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired; ``resume_execution`` turns failures into skips under ``soft_fail``."""
        from airflow_openai_files._compat import AirflowSensorTimeout

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
