"""Operators for the OpenAI Files API: upload, download, delete and retention clean-up.

They are thin: :class:`~airflow_openai_files.hooks.OpenAIFilesHook` does the transport, retries,
validation and logging of each transfer. Literal arguments are checked when the DAG is parsed,
templated ones when the task starts, with the same checks (:mod:`airflow_openai_files.validation`).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_openai_files.limits import ALL_PURPOSES, DEFAULT_CONN_ID, UPLOAD_PURPOSES
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS, OpenAIBaseOperatorMixin, id_from, ids_from
from airflow_openai_files.resume import task_key
from airflow_openai_files.validation import check_cleanup_filters, check_expiry, check_purpose, parse_duration

if TYPE_CHECKING:
    from datetime import timedelta

    from airflow.sdk import Context


def _now() -> float:
    """Wall-clock unix time; the clean-up's age filter compares it with ``created_at`` (tests patch it)."""
    return time.time()


def _size(size: float) -> str:
    from airflow_openai_files.transfer.progress import human_size

    return human_size(size)


def _upload_purpose(purpose: Any) -> str:
    return check_purpose(purpose, allowed=UPLOAD_PURPOSES)


def _list_purpose(purpose: Any) -> str:
    return check_purpose(purpose, allowed=ALL_PURPOSES)


class OpenAIUploadFileOperator(OpenAIBaseOperatorMixin, BaseOperator):
    """
    Upload a file to the OpenAI Files API and return its File object.

    The whole File object is the task's return value, and each of its keys is pushed as an XCom of
    its own (``multiple_outputs``), so ``upload.output["id"]`` works downstream.

    The body is streamed; ``fine-tune`` and ``batch`` JSONL content is checked before anything is sent
    when ``validate`` is true. A retried task instance first looks for the file an earlier, crashed
    try may have created (same name, size and purpose) and returns it instead of uploading a duplicate.

    :param file_path: a local path, a binary file object, or an ObjectStoragePath (or a
        ``s3://conn@bucket/key`` / ``file://...`` string) (templated).
    :param purpose: ``fine-tune``, ``batch``, ``assistants``, ``vision``, ``user_data`` or ``evals`` (templated).
    :param filename: the name OpenAI records; defaults to the source's name (templated).
    :param expires_after_seconds: expire the file this long after creation (3600..2592000) (templated).
    :param validate: check the JSONL content before any request.
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    template_fields: Sequence[str] = (
        "file_path",
        "purpose",
        "filename",
        "expires_after_seconds",
        *CONN_TEMPLATE_FIELDS,
    )
    ui_color = "#e8f6f3"

    def __init__(
        self,
        file_path: Any,
        purpose: str,
        *,
        filename: str | None = None,
        expires_after_seconds: int | None = None,
        validate: bool = True,
        reuse_on_retry: bool = True,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        # Each key of the File object is also its own XCom, so ``upload.output["id"]`` works downstream.
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(openai_conn_id=openai_conn_id, **kwargs)
        self.check_at_parse(self.task_id, _upload_purpose, purpose)
        self.check_at_parse(self.task_id, check_expiry, expires_after_seconds)
        self.file_path = file_path
        self.purpose = purpose
        self.filename = filename
        self.expires_after_seconds = expires_after_seconds
        self.validate = validate
        self.reuse_on_retry = reuse_on_retry

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_openai_files.resume import TaskRecord, content_fingerprint, try_number, upload_once

        purpose = self.check_at_run(_upload_purpose, self.purpose)
        expires = self.check_at_run(check_expiry, self.expires_after_seconds)
        record = TaskRecord(context, "upload")
        # What is about to be sent, when something will compare it later: a retry, or an Asset event.
        fingerprint = (
            content_fingerprint(self.file_path, self.filename or None)
            if record.available or self._asset_outlets()
            else None
        )

        def upload() -> dict[str, Any]:
            return self.hook.upload_file(
                self.file_path,
                purpose,
                filename=self.filename or None,
                expires_after_seconds=expires,
                validate=self.validate,
                resume=record if record.available else None,
            )

        if self.reuse_on_retry:
            created = upload_once(
                self.hook,
                context,
                record,
                "file",
                source=self.file_path,
                purpose=purpose,
                upload=upload,
                filename=self.filename or None,
                fingerprint=fingerprint,
                logger=self.log,
            )
        else:
            if try_number(context) > 1:
                self.log.info("Try %d: reuse_on_retry is off; uploading again", try_number(context))
            created = upload()
        self.log.info(
            "File %s: %s, %s bytes, purpose %s, status %s%s",
            created.get("id"),
            created.get("filename"),
            created.get("bytes"),
            created.get("purpose"),
            created.get("status"),
            f", expires at {created['expires_at']}" if created.get("expires_at") else "",
        )
        self._emit_asset_events(context, created, fingerprint)
        self._uploaded = created
        return created

    def _asset_outlets(self) -> list[Any]:
        from airflow_openai_files._lineage import asset_outlets

        return asset_outlets(getattr(self, "outlets", None) or ())

    def _emit_asset_events(self, context: Context, created: dict[str, Any], fingerprint: dict[str, Any] | None) -> None:
        """``file_id``, ``bytes``, ``sha256`` and ``purpose`` on the event of every Asset in ``outlets``."""
        from airflow_openai_files._lineage import emit_asset_events

        extra = {
            "file_id": created.get("id"),
            "bytes": created.get("bytes"),
            "sha256": (fingerprint or {}).get("sha256"),
            "purpose": created.get("purpose"),
        }
        emit_asset_events(context, self._asset_outlets(), extra)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input: the source path; output: the uploaded file, ``openai://<host>`` / its id."""
        from airflow_openai_files._lineage import file_dataset, location_dataset, operator_lineage, service_namespace

        created = getattr(self, "_uploaded", None) or {}
        outputs = [file_dataset(service_namespace(self.hook.settings.base_url), created["id"])] if created else []
        return operator_lineage(inputs=[location_dataset(self.file_path)], outputs=outputs)

    def on_kill(self) -> None:
        hook = self.__dict__.get("hook")
        if hook is not None:
            self.log.info("Task killed: cancelling in-flight multipart uploads")
            hook.cancel_active_uploads()


class OpenAIDownloadFileOperator(OpenAIBaseOperatorMixin, BaseOperator):
    """
    Stream a file's content to a local path or an ObjectStoragePath; return the destination as a string.

    The destination appears only once the download is complete and has the file's byte count.

    :param file_id: the ``file-...`` id, or a File dict (templated).
    :param destination: a local path, an ObjectStoragePath, or a ``scheme://...`` string (templated).
    :param overwrite: replace an existing destination (set it for tasks that may be retried or re-run).
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    template_fields: Sequence[str] = ("file_id", "destination", *CONN_TEMPLATE_FIELDS)
    ui_color = "#eaf2f8"

    def __init__(
        self,
        file_id: Any,
        destination: Any,
        *,
        overwrite: bool = False,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(openai_conn_id=openai_conn_id, **kwargs)
        self.file_id = file_id
        self.destination = destination
        self.overwrite = overwrite

    def execute(self, context: Context) -> str:
        file_id = self.check_at_run(id_from, self.file_id)
        self._downloaded = file_id
        return self.hook.download_file(file_id, self.destination, overwrite=self.overwrite, temp_key=task_key(context))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input: the file on the service; output: the destination path."""
        from airflow_openai_files._lineage import file_dataset, location_dataset, operator_lineage, service_namespace

        file_id = getattr(self, "_downloaded", None)
        inputs = [file_dataset(service_namespace(self.hook.settings.base_url), file_id)] if file_id else []
        return operator_lineage(inputs=inputs, outputs=[location_dataset(self.destination)])


class OpenAIDeleteFileOperator(OpenAIBaseOperatorMixin, BaseOperator):
    """
    Delete one file or a list of files; return the ids that were deleted.

    :param file_id: an id, a File dict, or a list of them (templated).
    :param missing_ok: a file that is already gone is not an error (it is left out of the result).
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    template_fields: Sequence[str] = ("file_id", *CONN_TEMPLATE_FIELDS)
    ui_color = "#fdedec"

    def __init__(
        self,
        file_id: Any,
        *,
        missing_ok: bool = True,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(openai_conn_id=openai_conn_id, **kwargs)
        self.file_id = file_id
        self.missing_ok = missing_ok

    def execute(self, context: Context) -> list[str]:
        ids = self.check_at_run(ids_from, self.file_id)
        deleted: list[str] = []
        self._deleted = deleted
        for file_id in ids:
            result = self.hook.delete_file(file_id, missing_ok=self.missing_ok)
            if result.get("deleted"):
                deleted.append(file_id)
        self.log.info(
            "Deleted %d of %d file(s)%s", len(deleted), len(ids), f": {', '.join(deleted)}" if deleted else ""
        )
        return deleted

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Every deleted file, as a dropped dataset."""
        return _dropped_lineage(self)


def _dropped_lineage(operator: OpenAIBaseOperatorMixin) -> Any:
    """Every file the task deleted, as an output dataset with the DROP lifecycle facet."""
    from airflow_openai_files._lineage import file_dataset, operator_lineage, service_namespace

    deleted = getattr(operator, "_deleted", None) or []
    if not deleted:
        return operator_lineage()
    namespace = service_namespace(operator.hook.settings.base_url)
    return operator_lineage(outputs=[file_dataset(namespace, file_id, dropped=True) for file_id in deleted])


class OpenAIFilesCleanupOperator(OpenAIBaseOperatorMixin, BaseOperator):
    """
    Retention: delete the files that match every given filter; return their ids.

    Refuses filters that would match every file (none given, ``filename_glob="*"`` alone, a zero
    ``older_than``), so a mistake cannot empty a project's storage. Unknown purposes are errors; the
    service-created ones (``batch_output``, ``fine-tune-results``...) are valid filters.

    :param purpose: only files with this purpose (e.g. ``fine-tune``, ``batch``, ``batch_output``) (templated).
    :param filename_glob: only files whose name matches this ``fnmatch`` pattern, case-sensitive (templated).
    :param older_than: only files created longer ago than this: a timedelta, seconds, or a string like
        ``"7d"`` / ``"12h"`` (templated).
    :param dry_run: list what would be deleted and delete nothing.
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    template_fields: Sequence[str] = ("purpose", "filename_glob", "older_than", *CONN_TEMPLATE_FIELDS)
    ui_color = "#fef5e7"

    def __init__(
        self,
        *,
        purpose: str | None = None,
        filename_glob: str | None = None,
        older_than: timedelta | float | str | None = None,
        dry_run: bool = False,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(openai_conn_id=openai_conn_id, **kwargs)
        if purpose:
            self.check_at_parse(self.task_id, _list_purpose, purpose)
        self.check_at_parse(self.task_id, parse_duration, older_than)
        self.check_at_parse(self.task_id, check_cleanup_filters, purpose, filename_glob, older_than)
        self.purpose = purpose
        self.filename_glob = filename_glob
        self.older_than = older_than
        # ``BaseOperator.dry_run()`` is a method (``airflow tasks test --dry-run``): keep it callable.
        self.is_dry_run = dry_run

    def execute(self, context: Context) -> list[str]:
        purpose, glob, age = self.check_at_run(check_cleanup_filters, self.purpose, self.filename_glob, self.older_than)
        cutoff = _now() - age.total_seconds() if age is not None else None
        matches = [
            item
            for item in self.hook.list_files(purpose=purpose)
            if (glob is None or fnmatch.fnmatchcase(str(item.get("filename", "")), glob))
            and (cutoff is None or int(item.get("created_at") or 0) < cutoff)
        ]
        filters = ", ".join(
            f"{name}={value}"
            for name, value in (("purpose", purpose), ("filename_glob", glob), ("older_than", age))
            if value is not None
        )
        total = sum(int(item.get("bytes") or 0) for item in matches)
        verb = "Would delete" if self.is_dry_run else "Deleting"
        self.log.info("%d file(s) match %s (%s)", len(matches), filters, _size(total))
        deleted: list[str] = []
        for item in matches:
            self.log.info(
                "%s %s (%s, %s bytes, purpose %s, created %s)",
                verb,
                item["id"],
                item.get("filename"),
                item.get("bytes"),
                item.get("purpose"),
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(item.get("created_at") or 0))),
            )
            if self.is_dry_run:
                deleted.append(item["id"])
                continue
            if self.hook.delete_file(item["id"], missing_ok=True).get("deleted"):
                deleted.append(item["id"])
                self._deleted = deleted
        self.log.info(
            "%s %d file(s), %s%s",
            "Dry run: would delete" if self.is_dry_run else "Deleted",
            len(deleted),
            _size(total),
            "" if self.is_dry_run else " freed",
        )
        return deleted

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Nothing is dropped by a dry run; otherwise every deleted file."""
        return _dropped_lineage(self)
