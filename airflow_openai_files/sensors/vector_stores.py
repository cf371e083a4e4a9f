"""Wait for a vector store file batch to finish indexing (for DAGs that attach files themselves)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import PokeReturnValue

from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS
from airflow_openai_files.resources import vector_stores
from airflow_openai_files.sensors.base import OpenAIBaseSensor

if TYPE_CHECKING:
    from airflow.sdk import Context


class OpenAIVectorStoreFileBatchSensor(OpenAIBaseSensor):
    """
    Wait until a vector store file batch is ``completed`` and return it.

    Fails at once, without retries, when the batch ends ``failed`` or ``cancelled``, does not exist, or more
    than ``max_failed_files`` of its files failed (the message names each with its ``last_error``). Works in
    ``poke`` / ``reschedule`` mode and with ``deferrable=True``
    (:class:`~airflow_openai_files.triggers.OpenAIVectorStoreFileBatchTrigger`); see
    :class:`~airflow_openai_files.sensors.base.OpenAIBaseSensor` for the rest.

    :param vector_store_id: the ``vs_...`` id (templated).
    :param batch_id: the ``vsfb_...`` id (templated), or a file batch dict carrying ``id``.
    :param max_failed_files: files of the batch allowed to fail (``None``: any number).
    """

    resource = vector_stores
    trigger_class = "airflow_openai_files.triggers.OpenAIVectorStoreFileBatchTrigger"
    id_field = "batch_id"
    event_key = "batch"
    default_poke_interval = 10.0
    default_timeout = 3600.0

    template_fields: Sequence[str] = ("vector_store_id", "batch_id", *CONN_TEMPLATE_FIELDS)
    ui_color = "#c9e4de"

    def __init__(self, vector_store_id: str, batch_id: Any, *, max_failed_files: int | None = 0, **kwargs: Any) -> None:
        self.vector_store_id = vector_store_id
        self.batch_id = batch_id
        self.max_failed_files = max_failed_files
        super().__init__(**kwargs)

    def fetch(self, object_id: str) -> dict[str, Any]:
        return self.hook.get_vector_store_file_batch(self.vector_store_id, object_id)

    def trigger_kwargs(self, object_id: str, target: tuple[str, ...]) -> dict[str, Any]:
        return {"vector_store_id": self.vector_store_id, "batch_ids": [object_id]}

    def poke(self, context: Context) -> PokeReturnValue:
        result = super().poke(context)
        if result.is_done and isinstance(result.xcom_value, dict):
            self._check_failed_files(result.xcom_value)
        return result

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        batch = super().execute_complete(context, event)
        self._check_failed_files(batch)
        return batch

    def _check_failed_files(self, batch: dict[str, Any]) -> None:
        """A completed batch may still hold failed files: more than ``max_failed_files`` fails the task."""
        failed = vector_stores.file_counts(batch)["failed"]
        if self.max_failed_files is None or failed <= self.max_failed_files:
            return
        files = self.hook.list_vector_store_file_batch_files(self.vector_store_id, batch["id"], status="failed")
        listed = "; ".join(vector_stores.describe_file_error(item) for item in files)
        raise AirflowFailException(
            f"{vector_stores.describe_batch(batch)}; more than {self.max_failed_files} failed: {listed}"
        )
