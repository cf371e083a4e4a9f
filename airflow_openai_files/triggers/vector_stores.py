"""The trigger behind ``OpenAIVectorStoreSyncOperator(deferrable=True)`` and
``OpenAIVectorStoreFileBatchSensor(deferrable=True)``: wait until file batches finish indexing."""

from __future__ import annotations

from typing import Any

from airflow_openai_files.hooks import OpenAIFilesAsyncHook
from airflow_openai_files.hooks.poller import VECTOR_STORE_FILE_BATCHES
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.resources import Verdict, vector_stores
from airflow_openai_files.resources.vector_stores import (
    TERMINAL_STATUSES,
    describe_batch,
    describe_store,
    file_counts,
)
from airflow_openai_files.triggers.base import OpenAIPollingTrigger
from airflow_openai_files.validation import validate_id


class OpenAIVectorStoreFileBatchTrigger(OpenAIPollingTrigger):
    """
    Poll ``GET /vector_stores/{id}/file_batches/{batch_id}`` for each batch until every one is terminal.

    ``carry`` (JSON) comes back unchanged in the event: what the task planned before deferring (the method
    kwargs of ``defer`` do not survive ``dag.test()``, an event does). With ``include_store``, also wait
    until the store has no file ``in_progress`` (the sync operator's retry waits for files an earlier try
    attached). A finished batch is not asked again (a sync of 5,000 files makes three batches; each poll
    asks only the unfinished ones). Yields exactly one event::

        {"status": "success" | "error" | "timeout", "vector_store_id", "batch_ids", "batches": [...] | None,
         "batch": the first batch | None, "message", "carry"}

    ``success`` when every batch is ``completed`` (files inside may have failed: the caller counts them),
    ``error`` when one ended ``failed`` or ``cancelled``, or a poll failed for good, ``timeout`` when
    ``timeout`` or ``deadline`` ran out first.
    """

    resource = vector_stores
    id_field = "vector_store_id"
    event_key = "batch"

    poll_kind = VECTOR_STORE_FILE_BATCHES

    def __init__(
        self,
        vector_store_id: str,
        batch_ids: list[str],
        *,
        openai_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        deadline: float | None = None,
        include_store: bool = False,
        carry: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(openai_conn_id=openai_conn_id, poll_interval=poll_interval, timeout=timeout, deadline=deadline)
        self.vector_store_id = validate_id(vector_store_id, "vector store")
        self.batch_ids = [validate_id(batch_id, "file batch") for batch_id in batch_ids]
        self.include_store = bool(include_store)
        self.carry = carry
        if not self.batch_ids and not self.include_store:
            raise ValueError("batch_ids must name at least one file batch (or include_store be true)")
        self._done: dict[str, dict[str, Any]] = {}

    def fields(self) -> dict[str, Any]:
        return {
            "vector_store_id": self.vector_store_id,
            "batch_ids": list(self.batch_ids),
            "include_store": self.include_store,
            "carry": self.carry,
        }

    async def fetch(self, hook: OpenAIFilesAsyncHook) -> dict[str, Any]:
        batches = []
        for batch_id in self.batch_ids:
            batch = self._done.get(batch_id)
            if batch is None:
                # The triggerer's shared poller of file batches (no list endpoint: one GET per batch per round).
                batch = await self.poll(f"{self.vector_store_id}/{batch_id}")
                if batch.get("status") in TERMINAL_STATUSES:
                    self._done[batch_id] = batch
            batches.append(batch)
        finished = all(batch.get("status") in TERMINAL_STATUSES for batch in batches)
        store = None
        if self.include_store and finished:
            # Files attached by an earlier try (whose batches this try does not know) are still indexing.
            store = await hook.get_vector_store(self.vector_store_id)
            finished = file_counts(store)["in_progress"] == 0
        return {"status": "completed" if finished else "in_progress", "batches": batches, "store": store}

    def judge(self, obj: dict[str, Any]) -> Verdict:
        batches = obj["batches"]
        if not batches:
            message = describe_store(obj["store"]) if obj.get("store") else f"{self.vector_store_id} is indexing"
        elif len(batches) == 1:
            message = describe_batch(batches[0])
        else:
            totals = [file_counts(batch) for batch in batches]
            done = sum(c["completed"] + c["failed"] + c["cancelled"] for c in totals)
            message = (
                f"{len(batches)} file batches of {self.vector_store_id}: {done}/{sum(c['total'] for c in totals)}"
                f" files done, {sum(c['failed'] for c in totals)} failed"
            )
        if obj["status"] != "completed":
            return Verdict("waiting", message)
        ended = [batch for batch in batches if batch.get("status") != "completed"]
        if ended:
            return Verdict("error", "; ".join(describe_batch(batch) for batch in ended))
        return Verdict("success", message)

    def payload(self, status: str, message: str, obj: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "status": status,
            "vector_store_id": self.vector_store_id,
            "batch_ids": list(self.batch_ids),
            "batches": obj["batches"] if obj else None,
            "batch": obj["batches"][0] if obj and obj["batches"] else None,
            "message": message,
            "carry": self.carry,
        }

    def describe_wait(self) -> str:
        return f"file batches {', '.join(self.batch_ids)} of {self.vector_store_id} to finish"
