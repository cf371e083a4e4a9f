"""Wait for a batch created elsewhere (another DAG, a script, the service's UI) to finish."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS
from airflow_openai_files.resources import batches
from airflow_openai_files.sensors.base import OpenAIBaseSensor


class OpenAIBatchSensor(OpenAIBaseSensor):
    """
    Wait until a batch reaches a terminal status and return its Batch object.

    Succeeds when the batch ends in one of ``success_statuses`` (``completed`` by default); fails at
    once, without retries, when it ends in another terminal status (``failed``: the message lists the
    service's ``errors.data``) or does not exist. With ``soft_fail=True`` those and a timeout skip the
    task instead. Works in ``mode="poke"``, ``mode="reschedule"`` and ``deferrable=True`` (one check on
    the worker, then :class:`~airflow_openai_files.triggers.OpenAIBatchTrigger` in the triggerer), and
    with ``start_from_trigger=True`` (see :class:`~airflow_openai_files.sensors.base.OpenAIBaseSensor`).

    :param batch_id: the ``batch_...`` id (templated), or a dict carrying ``batch_id`` / ``id``
        (the batch operator's summary, a Batch object).
    :param success_statuses: terminal statuses that count as success, e.g. ``("completed", "expired")``.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poke_interval: seconds between two checks (60).
    :param timeout: seconds to wait at most (25 hours: the 24h window and finalizing).
    :param start_from_trigger: start the wait in the triggerer (Airflow 3.3+, literal arguments).
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    resource = batches
    trigger_class = "airflow_openai_files.triggers.OpenAIBatchTrigger"
    id_field = "batch_id"
    target_field = "success_statuses"
    event_key = "batch"
    default_poke_interval = 60.0
    default_timeout = 25 * 3600.0

    template_fields: Sequence[str] = ("batch_id", *CONN_TEMPLATE_FIELDS)
    ui_color = "#d2b4de"

    def __init__(self, batch_id: Any, *, success_statuses: Sequence[str] = batches.SUCCESS, **kwargs: Any) -> None:
        self.batch_id = batch_id
        self.success_statuses = success_statuses
        super().__init__(**kwargs)
        self.success_statuses = self.target()

    def fetch(self, object_id: str) -> dict[str, Any]:
        return self.hook.get_batch(object_id)

    def trigger_kwargs(self, object_id: str, target: tuple[str, ...]) -> dict[str, Any]:
        return {"batch_id": object_id, "success_statuses": list(target)}
