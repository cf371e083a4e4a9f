"""Keep a folder, a bucket prefix or a list of files in sync with an OpenAI vector store.

What is recorded where (the store is the record):

* every file the operator attaches carries two attributes, :data:`~.resources.vector_stores.HASH_ATTRIBUTE`
  (the SHA-256 of its bytes) and :data:`~.resources.vector_stores.PATH_ATTRIBUTE` (its path relative to the
  source); a run lists the store's files, compares them with the source and sends only the difference;
* every uploaded file is named ``<first 16 hex digits of its SHA-256>_<file name>``, so a retry finds a file a
  killed try uploaded but never attached (same name, same size, created since the DAG run started) and
  attaches it instead of uploading it again; such a file that is no longer wanted is deleted (the narrow rule
  is :func:`~._vector_store_steps.delete_orphans`);
* on Airflow 3.3+ the task state store also keeps the store id, the file batches a try created (the next try
  waits for those batches rather than creating new ones), the names a try is about to upload (hashed, chunked
  under 64 KiB a key; a retry deletes those nothing uses, e.g. for a file deleted from the source meanwhile)
  and when try 1 began (the retry window when a retry cannot read the DAG run's start).

Files of the store without the path attribute (attached by someone else) are left alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_openai_files._compat import AirflowException, AirflowFailException, conf
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesValidationError
from airflow_openai_files.limits import DEFAULT_CONN_ID, FILE_BATCH_MAX_FILES
from airflow_openai_files.operators import _vector_store_steps as steps
from airflow_openai_files.operators._vector_store_source import check_globs, scan_source
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS, OpenAIBaseOperatorMixin
from airflow_openai_files.resources.vector_stores import (
    RESERVED_ATTRIBUTES,
    describe_store,
    file_counts,
    not_found_message,
)
from airflow_openai_files.validation.vector_stores import check_attributes, check_chunking_strategy, check_store_expiry

if TYPE_CHECKING:
    from airflow.sdk import Context


class OpenAIVectorStoreSyncOperator(OpenAIBaseOperatorMixin, BaseOperator):
    """
    Make a vector store hold exactly the files of ``source`` (one vector store file per source file).

    Plans first, from the hashes recorded in the store's file attributes: unchanged files are skipped,
    changed ones replaced (the new version uploaded and attached, the old one detached and deleted once the
    new one is indexed), removed ones detached and deleted (``delete_removed``), new ones uploaded (the
    Uploads API above the hook's threshold) and attached through file batches of at most 2,000 files. Then
    waits for indexing, in the triggerer with ``deferrable=True``, for at most ``timeout`` seconds.

    Fails only when more than ``max_failed_files`` files failed to index; the message names each one with
    its ``last_error``. Empty source files are not uploaded (the Files API refuses them) and count as failed
    (``invalid_file``).

    Returns (XCom) ``{"vector_store_id", "added", "replaced", "removed", "unchanged", "failed", "bytes",
    "usage_bytes"}``: numbers of files (the XCom stays small for thousands of files; the task log lists the
    paths), ``failed`` as ``{"path", "file_id", "code", "message"}`` each, the bytes this run uploaded.

    :param source: a local folder, an ObjectStoragePath prefix or a ``scheme://`` URL string (``s3://bucket/docs``),
        or a list of file paths / URLs (each keyed by its file name).
    :param vector_store_id: the store to sync (``vs_...``); or give ``vector_store_name``.
    :param vector_store_name: find the store by this name, create it when there is none.
    :param include: glob(s) over paths relative to the source (``**`` crosses folders).
    :param exclude: glob(s) of paths to leave out.
    :param attributes: attributes for every file, or a callable ``path -> dict`` (at most 14 pairs: two are
        the operator's record).
    :param chunking_strategy: ``{"type": "auto"}`` or ``{"type": "static", "static": {...}}`` for attached files.
    :param delete_removed: detach and delete the files whose source file is gone.
    :param max_failed_files: failed files tolerated before the task fails.
    :param expires_after: days of inactivity before a store this operator creates expires (1..365).
    :param deferrable: wait for indexing in the triggerer.
    :param poll_interval: seconds between two checks of the indexing.
    :param timeout: seconds to wait for indexing at most.
    """

    template_fields: Sequence[str] = ("source", "vector_store_id", "vector_store_name", *CONN_TEMPLATE_FIELDS)
    ui_color = "#c9e4de"

    def __init__(
        self,
        *,
        source: Any,
        vector_store_id: str | None = None,
        vector_store_name: str | None = None,
        include: str | Sequence[str] = "**/*",
        exclude: str | Sequence[str] | None = None,
        attributes: dict[str, Any] | Callable[[str], dict[str, Any]] | None = None,
        chunking_strategy: dict[str, Any] | None = None,
        delete_removed: bool = True,
        max_failed_files: int = 0,
        expires_after: Any = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(openai_conn_id=openai_conn_id, **kwargs)
        self.source = source
        self.vector_store_id = vector_store_id
        self.vector_store_name = vector_store_name
        self.include = include
        self.exclude = exclude
        self.attributes = attributes
        self.chunking_strategy = chunking_strategy
        self.delete_removed = delete_removed
        self.max_failed_files = max_failed_files
        self.expires_after = expires_after
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.check_at_parse(self.task_id, self._check_arguments)

    def _check_arguments(self) -> None:
        if not self.vector_store_id and not self.vector_store_name:
            raise OpenAIFilesValidationError("Give vector_store_id or vector_store_name")
        if not isinstance(self.max_failed_files, int) or self.max_failed_files < 0:
            raise OpenAIFilesValidationError(f"max_failed_files must be an integer >= 0, got {self.max_failed_files!r}")
        if not callable(self.attributes):
            check_attributes(self.attributes, reserved=len(RESERVED_ATTRIBUTES))
        check_chunking_strategy(self.chunking_strategy)
        check_store_expiry(self.expires_after)
        check_globs(self.include)
        check_globs(self.exclude)
        if not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise OpenAIFilesValidationError(f"timeout must be a positive number of seconds, got {self.timeout!r}")

    # -- the run -----------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        from airflow_openai_files import resume

        self.check_at_run(self._check_arguments)
        record = resume.TaskRecord(context, "vector_store_sync")
        since = steps.retry_since(context, record, self.log)  # before this try records its own start
        if record.get("started") is None:
            record.set("started", time.time())  # the retry window when a retry cannot read the run's start
        files = self.check_at_run(scan_source, self.source, self.include, self.exclude)
        self.log.info("Source %s: %d files, %d bytes", self.source, len(files), sum(f.size for f in files))
        store = self._store(record)
        store_id = store["id"]
        by_path = steps.store_files_by_path(self.hook, store_id)
        plan = steps.make_plan(files, by_path, self.delete_removed)
        summary: dict[str, Any] = {
            "vector_store_id": store_id,
            "added": plan.added,
            "replaced": len(plan.to_send) - plan.added,
            "removed": plan.removed,
            "unchanged": plan.unchanged,
            "failed": plan.local_failed,
            "bytes": 0,
            "usage_bytes": int(store.get("usage_bytes") or 0),
        }
        self.log.info(
            "Plan for %s: %d to add, %d to replace, %d to remove, %d unchanged, %d empty (not sent)",
            store_id,
            summary["added"],
            summary["replaced"],
            summary["removed"],
            summary["unchanged"],
            len(plan.local_failed),
        )
        for f in plan.to_send:
            self.log.debug("%s %s (%d bytes)", "replace" if f.path in by_path else "add", f.path, f.size)

        batch_ids: list[str] = list(record.get("batches", []))
        earlier = steps.earlier_uploads(self.hook, self.log, since)
        # Recorded before uploading: the exact names a retry may delete if nothing uses them then.
        recorded = steps.recorded_uploads(record)
        steps.record_uploads(record, recorded | {steps.upload_mark(f.upload_name) for f in plan.to_send})
        uploaded, summary["bytes"] = steps.upload_files(self.hook, self.log, plan.to_send, earlier)
        pairs = [(f, uploaded[f.path]) for f in plan.to_send] + plan.reattach
        if plan.reattach:
            self.log.info("Attaching again %d unchanged files that failed with server_error", len(plan.reattach))
        entries = [steps.batch_entry(f, file_id, self.attributes, self.chunking_strategy) for f, file_id in pairs]
        for start in range(0, len(entries), FILE_BATCH_MAX_FILES):
            batch = self.hook.create_vector_store_file_batch(
                store_id, files=entries[start : start + FILE_BATCH_MAX_FILES]
            )
            batch_ids.append(batch["id"])
            record.set("batches", batch_ids)
        for file_id in plan.removed_old:
            steps.drop(self.hook, store_id, file_id)
        names = {PurePosixPath(path).name for path in [*(f.path for f in files), *by_path]}
        steps.delete_orphans(self.hook, self.log, earlier, set(uploaded.values()) | plan.attached, names, recorded)

        kwargs: dict[str, Any] = {"summary": summary, "batch_ids": batch_ids, "replaced_old": plan.replaced_old}
        started = time.monotonic()  # ``timeout`` bounds the wait for indexing, not the uploads before it
        waiting = bool(batch_ids) or file_counts(self.hook.get_vector_store(store_id))["in_progress"] > 0
        if waiting and self.deferrable:
            from airflow_openai_files.triggers import OpenAIVectorStoreFileBatchTrigger

            remaining = max(1.0, self.timeout - (time.monotonic() - started))
            self.log.info("Deferring: the triggerer waits for %s to index (%d batches)", store_id, len(batch_ids))
            trigger = OpenAIVectorStoreFileBatchTrigger(
                store_id,
                batch_ids,
                include_store=True,
                openai_conn_id=self.openai_conn_id,
                poll_interval=self.poll_interval,
                timeout=remaining,
                deadline=time.time() + remaining,
                carry=kwargs,
            )
            self.defer_to_trigger(trigger, timeout=remaining)
        if waiting:
            steps.wait_for_indexing(
                self.hook,
                self.log,
                store_id,
                batch_ids,
                started=started,
                poll_interval=self.poll_interval,
                timeout=self.timeout,
            )
        return self._finish(context, **kwargs)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        carry = (event or {}).get("carry") or {}
        summary = carry.get("summary")
        if not event or summary is None:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event carrying the plan")
        status = event.get("status")
        if status == "timeout":
            raise AirflowException(f"{self.task_id}: {event.get('message')}")  # a retry resumes the wait
        if status == "error" and not event.get("batches"):
            raise AirflowException(f"{self.task_id}: {event.get('message')}")
        if status == "error":
            self.log.warning("%s", event.get("message"))
        return self._finish(
            context,
            summary=summary,
            batch_ids=carry.get("batch_ids") or [],
            replaced_old=carry.get("replaced_old") or [],
        )

    # -- steps -------------------------------------------------------------------------------------------------
    def _store(self, record: Any) -> dict[str, Any]:
        """The store to sync: by id, else the newest with ``vector_store_name``, else a new one."""
        store_id = self.vector_store_id or record.get("store_id")
        if store_id:
            try:
                store = self.hook.get_vector_store(store_id)
            except OpenAIFilesError as err:
                if err.http_status == 404:
                    raise AirflowFailException(f"{not_found_message(store_id)} (request id {err.request_id})") from err
                raise
        else:
            found = self.hook.find_vector_store(name=self.vector_store_name)
            store = found or self.hook.create_vector_store(self.vector_store_name, expires_after=self.expires_after)
        if store.get("status") == "expired":
            raise AirflowFailException(f"{describe_store(store)}: an expired store cannot be used; sync into a new one")
        record.set("store_id", store["id"])
        self.log.info("%s", describe_store(store))
        return store

    def _finish(
        self, context: Context, *, summary: dict[str, Any], batch_ids: list[str], replaced_old: list[str]
    ) -> dict[str, Any]:
        from airflow_openai_files import resume

        store_id = summary["vector_store_id"]
        self._synced_store_id = store_id  # for the lineage, read once the task is done
        for file_id in replaced_old:
            steps.drop(self.hook, store_id, file_id)
        failed = list(summary.get("failed") or []) + steps.failed_files(self.hook, store_id)
        store = self.hook.get_vector_store(store_id)
        summary = {**summary, "failed": failed, "usage_bytes": int(store.get("usage_bytes") or 0)}
        self.log.info("%s", steps.describe_summary(summary))
        record = resume.TaskRecord(context, "vector_store_sync")
        steps.forget_uploads(record)
        for name in ("batches", "started"):
            record.delete(name)
        if len(failed) > self.max_failed_files:
            raise AirflowFailException(
                f"{self.task_id}: {steps.describe_failures(store_id, failed, self.max_failed_files)}"
            )
        return summary

    def on_kill(self) -> None:
        self.hook.cancel_active_uploads()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The source as input dataset(s), the vector store as output."""
        from airflow.providers.common.compat.openlineage.facet import Dataset

        from airflow_openai_files._lineage import location_dataset, operator_lineage, service_namespace

        store_id = getattr(self, "_synced_store_id", None)
        sources = self.source if isinstance(self.source, (list, tuple)) else [self.source]
        outputs = []
        if store_id:
            outputs.append(
                Dataset(namespace=service_namespace(self.hook.settings.base_url), name=f"vector_stores/{store_id}")
            )
        return operator_lineage(inputs=[location_dataset(item) for item in sources], outputs=outputs)


__all__ = ["OpenAIVectorStoreSyncOperator"]
