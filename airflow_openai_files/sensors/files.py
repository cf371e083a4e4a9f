"""Wait for an uploaded file to be processed before a fine-tune job or a batch uses it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS
from airflow_openai_files.resources import files
from airflow_openai_files.sensors.base import OpenAIBaseSensor


class OpenAIFileSensor(OpenAIBaseSensor):
    """
    Wait until a file reaches ``target_status`` (``processed`` by default) and return its File object.

    Fails at once, without retries, when the file ends in ``error`` (the message carries its
    ``status_details``) or does not exist (HTTP 404); with ``soft_fail=True`` those and a timeout
    skip the task instead. Works in ``mode="poke"``, ``mode="reschedule"`` and ``deferrable=True``
    (one check on the worker, then :class:`~airflow_openai_files.triggers.OpenAIFileTrigger` in the
    triggerer), and with ``start_from_trigger=True`` (see :class:`~airflow_openai_files.sensors.base.OpenAIBaseSensor`).

    :param file_id: the ``file-...`` id (templated), e.g. ``upload.output["id"]``; a File dict is accepted too.
    :param target_status: ``processed`` or ``uploaded`` (templated).
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poke_interval: seconds between two checks (10).
    :param timeout: seconds to wait at most (one hour).
    :param start_from_trigger: start the wait in the triggerer (Airflow 3.3+, literal arguments).
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    resource = files
    trigger_class = "airflow_openai_files.triggers.OpenAIFileTrigger"
    id_field = "file_id"
    target_field = "target_status"
    event_key = "file"
    default_poke_interval = 10.0
    default_timeout = 60 * 60.0

    template_fields: Sequence[str] = ("file_id", "target_status", *CONN_TEMPLATE_FIELDS)
    ui_color = "#d5f5e3"

    def __init__(self, file_id: Any, *, target_status: str = "processed", **kwargs: Any) -> None:
        self.file_id = file_id
        self.target_status = target_status
        super().__init__(**kwargs)

    def fetch(self, object_id: str) -> dict[str, Any]:
        return self.hook.get_file(object_id)

    def trigger_kwargs(self, object_id: str, target: tuple[str, ...]) -> dict[str, Any]:
        return {"file_id": object_id, "target_status": target[0]}
