"""
``OpenAIBaseSensor``: the one sensor of the provider; a resource's sensor says only what differs.

A subclass (see ``sensors/files.py``, ``batches.py``, ``fine_tuning.py``) sets::

    class OpenAIBatchSensor(OpenAIBaseSensor):
        resource = batches                  # the pure rules: KIND, check_target, judge, not_found_message
        trigger_class = "airflow_openai_files.triggers.OpenAIBatchTrigger"   # a string: parsing stays light
        id_field = "batch_id"               # the argument holding the id (an id, an object dict, a summary)
        target_field = "success_statuses"   # the argument holding the target statuses (None: resource.SUCCESS)
        event_key = "batch"                 # where the trigger's event carries the object
        template_fields = ("batch_id", *CONN_TEMPLATE_FIELDS)

        def fetch(self, object_id):         # one look, on the worker, through the sync hook
            return self.hook.get_batch(object_id)

        def trigger_kwargs(self, object_id, target):   # the trigger's own arguments (JSON literals)
            return {"batch_id": object_id, "success_statuses": list(target)}

and its ``__init__`` stores its own arguments *before* calling ``super().__init__`` with the rest (the base
checks them there: a literal target when the DAG is parsed, the literal arguments ``start_from_trigger``
needs). Nothing else: the base owns the rest, the same for every resource:

* ``poke`` (``mode="poke"`` and ``mode="reschedule"``): fetch, judge with the resource module, return
  the object as the XCom once it is done; fail at once (:class:`AirflowFailException`, no retries) when
  the object ended in a failure status or does not exist (the hook's ``OpenAIFilesNotFoundError``).
* ``deferrable=True``: one check on the worker, then the trigger with the sensor's overall deadline;
  ``execute_complete`` returns the object or fails with the trigger's message (a timeout is an
  :class:`AirflowSensorTimeout`).
* ``soft_fail`` (and ``never_fail``): every failure and timeout skips instead, on the worker and on resume.
* A timeout names the object and what the last check saw.
* ``start_from_trigger=True`` on Airflow 3.3+ with literal arguments: the wait starts in the triggerer,
  without a worker slot even for the first check; elsewhere the sensor defers from the worker and
  logs why.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_openai_files._compat import AirflowFailException, AirflowSkipException, conf
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.operators.base import DEFER_TIMEOUT_MARGIN, OpenAIBaseOperatorMixin, id_from
from airflow_openai_files.validation import is_templated

if TYPE_CHECKING:
    from airflow.sdk import Context


class OpenAIBaseSensor(OpenAIBaseOperatorMixin, BaseSensorOperator):
    """
    Wait until one object of the service reaches a target status; return the object.

    :param deferrable: wait in the triggerer instead of holding a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param poke_interval: seconds between two checks (the resource's ``default_poke_interval`` if not given).
    :param timeout: seconds to wait at most (the resource's ``default_timeout`` if not given).
    :param start_from_trigger: with ``deferrable=True`` on Airflow 3.3+, start the wait in the triggerer
        directly. Needs literal templated arguments (no template, no XCom): otherwise, and on Airflow
        3.1/3.2 whose scheduler ignores it, the sensor defers from the worker as usual and logs why.
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    # -- what a subclass says ----------------------------------------------------------------------------------

    #: The resource's rules module (:mod:`airflow_openai_files.resources`).
    resource: ModuleType
    #: Dotted path of the trigger class (re-exported by ``airflow_openai_files.triggers``).
    trigger_class: ClassVar[str]
    #: The attribute holding the object's id argument.
    id_field: ClassVar[str]
    #: The attribute holding the user's target statuses; ``None``: the resource's ``SUCCESS``.
    target_field: ClassVar[str | None] = None
    #: The key of the trigger event's payload that carries the object.
    event_key: ClassVar[str]
    #: Defaults of ``poke_interval`` and ``timeout`` for this resource (how fast it usually moves).
    default_poke_interval: ClassVar[float] = 60.0
    default_timeout: ClassVar[float] = 3600.0

    def fetch(self, object_id: str) -> dict[str, Any]:
        """One look at the object through ``self.hook`` (its errors propagate)."""
        raise NotImplementedError

    def trigger_kwargs(self, object_id: str, target: tuple[str, ...]) -> dict[str, Any]:
        """The trigger's own arguments (the base adds connection, poll interval, timeout and deadline)."""
        raise NotImplementedError

    # -- the plumbing ---------------------------------------------------------------------------------------

    #: Class default (Airflow's scheduler reads it); instances that can start in the triggerer set it.
    start_from_trigger = False

    def __init__(
        self,
        *,
        deferrable: bool | None = None,
        poke_interval: float | None = None,
        timeout: float | None = None,
        start_from_trigger: bool = False,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)  # ``wait.output["status"]`` works downstream
        super().__init__(
            openai_conn_id=openai_conn_id,
            poke_interval=self.default_poke_interval if poke_interval is None else poke_interval,
            timeout=self.default_timeout if timeout is None else timeout,
            **kwargs,
        )
        if deferrable is None:
            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = deferrable
        self._last_seen = ""  # the last check's verdict, for a timeout that names the object and its status
        self.start_from_trigger_note = ""
        if self.target_field and not is_templated(getattr(self, self.target_field)):
            self.target()  # a literal mistake fails when the DAG is parsed
        if start_from_trigger:
            self._start_from_trigger()

    def object_id(self) -> str:
        """The id from the (rendered) argument: an id, an object dict, a one-item list, an operator's summary."""
        value = getattr(self, self.id_field)
        if isinstance(value, Mapping) and "id" not in value and self.id_field in value:
            value = value[self.id_field]  # e.g. the batch operator's summary: {"batch_id": ...}
        return str(self.check_at_run(lambda v: id_from(v, kind=self.resource.KIND), value))

    def target(self) -> tuple[str, ...]:
        """The statuses that end the wait (the user's, checked by the resource module)."""
        given = getattr(self, self.target_field) if self.target_field else self.resource.SUCCESS
        try:
            return tuple(self.resource.check_target(given))
        except ValueError as err:
            raise AirflowFailException(f"{self.task_id}: {err}") from None

    def _trigger(self, object_id: str, deadline: float | None) -> Any:
        module, _, name = self.trigger_class.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        return cls(
            **self.trigger_kwargs(object_id, self.target()),
            openai_conn_id=self.openai_conn_id,
            poll_interval=self.poke_interval,
            timeout=self.timeout,
            deadline=deadline,
        )

    def _start_from_trigger(self) -> None:
        """Set ``start_from_trigger`` and ``start_trigger_args`` where the running Airflow honours them."""
        from airflow_openai_files._compat import SUPPORTS_START_FROM_TRIGGER

        literal = (str, dict, list, tuple)
        values = [getattr(self, field) for field in self.template_fields]
        if not self.deferrable:
            reason = "it needs deferrable=True"
        elif any(is_templated(v) or not isinstance(v, literal) for v in values):
            reason = f"{', '.join(self.template_fields)} must be literal (no template or XCom)"
        elif not SUPPORTS_START_FROM_TRIGGER:
            reason = "this Airflow's scheduler ignores it (Airflow 3.3+ honours it)"
        else:
            from airflow.triggers.base import StartTriggerArgs

            object_id = self.object_id()
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls=self.trigger_class,
                trigger_kwargs={
                    **self.trigger_kwargs(object_id, self.target()),
                    "openai_conn_id": self.openai_conn_id,
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

    def poke(self, context: Context) -> PokeReturnValue:
        object_id = self.object_id()
        target = self.target()
        # A missing object is an OpenAIFilesNotFoundError (final, worded by the transport with the resource
        # module's not_found_message): it fails the task, or skips it under soft_fail.
        obj = self.fetch(object_id)
        verdict = self.resource.judge(obj, target)
        self.log.info("%s", verdict.message)
        if verdict.state == "error":
            raise AirflowFailException(verdict.message)
        self._last_seen = verdict.message
        done = verdict.state == "success"
        return PokeReturnValue(is_done=done, xcom_value=obj if done else None)

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
        object_id = self.object_id()
        self.log.info(
            "Deferring: the triggerer checks %s every %.0fs for up to %.0fs",
            object_id,
            self.poke_interval,
            self.timeout,
        )
        self.defer_to_trigger(self._trigger(object_id, started + self.timeout), timeout=self.timeout)

    def _wait_on_worker(self, context: Context) -> Any:
        """Poke / reschedule mode; a timeout names the object and its status at the last check."""
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
        """Resume after the trigger's one event; ``resume_execution`` turns failures into skips under ``soft_fail``."""
        from airflow_openai_files._compat import AirflowSensorTimeout

        outcome = self.trigger_outcome(event, self.event_key)
        if outcome.status == "success":
            self.log.info("%s", outcome.message)
            return outcome.obj
        if outcome.status == "timeout":
            raise AirflowSensorTimeout(outcome.message)
        raise AirflowFailException(outcome.message or f"{self.task_id}: the trigger reported an error")

    def _fail(self, err: AirflowFailException) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(f"Skipping due to soft_fail: {err}") from err
        if getattr(self, "never_fail", False):
            raise AirflowSkipException(f"Skipping due to never_fail: {err}") from err
        raise err
