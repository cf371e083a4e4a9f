"""Operators for the OpenAI Files API: upload, download, delete and retention clean-up.

They are thin: :class:`~airflow_openai_files.hooks.OpenAIFilesHook` does the transport, retries,
validation and logging of each transfer. Literal arguments are checked when the DAG is parsed,
templated ones when the task starts, with the same checks (:mod:`airflow_openai_files.validation`).
"""

from __future__ import annotations

import ast
import fnmatch
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_openai_files._resume import task_key
from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.limits import ALL_PURPOSES, DEFAULT_CONN_ID, UPLOAD_PURPOSES
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS, OpenAIFilesMixin
from airflow_openai_files.status import extract_file_id
from airflow_openai_files.validation import check_cleanup_filters, check_expiry, check_purpose, parse_duration

if TYPE_CHECKING:
    from datetime import timedelta

    from airflow.sdk import Context


def _now() -> float:
    """Wall-clock unix time; the clean-up's age filter compares it with ``created_at`` (tests patch it)."""
    return time.time()


def _size(size: float) -> str:
    from airflow_openai_files._progress import human_size

    return human_size(size)


def _file_ids(value: Any) -> list[str]:
    """One id, a File dict, or a list of them (also a rendered ``"['file-a', 'file-b']"``), deduplicated."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise ValueError(f"file_id {value!r} looks like a list but is not one") from None
    items: Iterable[Any] = value if isinstance(value, (list, tuple, set)) else [value]
    ids: list[str] = []
    for item in items:
        file_id = extract_file_id(item)
        if not isinstance(file_id, str) or not file_id.strip():
            raise ValueError(f"Invalid file id {file_id!r}: expected a 'file-...' string")
        if file_id.strip() not in ids:
            ids.append(file_id.strip())
    return ids


def _upload_purpose(purpose: Any) -> str:
    return check_purpose(purpose, allowed=UPLOAD_PURPOSES)


def _list_purpose(purpose: Any) -> str:
    return check_purpose(purpose, allowed=ALL_PURPOSES)


class OpenAIUploadFileOperator(OpenAIFilesMixin, BaseOperator):
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

    def execute(self, context: Context) -> dict[str, Any]:
        purpose = self.check_at_run(_upload_purpose, self.purpose)
        expires = self.check_at_run(check_expiry, self.expires_after_seconds)
        reconcile_since = self._reconcile_since(context)
        created = self.hook.upload_file(
            self.file_path,
            purpose,
            filename=self.filename or None,
            expires_after_seconds=expires,
            validate=self.validate,
            reconcile_since=reconcile_since,
        )
        self.log.info(
            "File %s: %s, %s bytes, purpose %s, status %s%s",
            created.get("id"),
            created.get("filename"),
            created.get("bytes"),
            created.get("purpose"),
            created.get("status"),
            f", expires at {created['expires_at']}" if created.get("expires_at") else "",
        )
        return created

    def _reconcile_since(self, context: Context) -> float | None:
        """On a retry, when the earlier try began (bounded by the DAG run's start), else None."""
        ti = context.get("ti")
        if int(getattr(ti, "try_number", 1) or 1) <= 1:
            return None
        dag_run = context.get("dag_run")
        started: datetime | None = getattr(dag_run, "start_date", None) or getattr(dag_run, "queued_at", None)
        if started is None:
            # No run start known: look back over the retries' worth of time.
            return time.time() - 24 * 3600
        self.log.info(
            "Try %s: looking for an upload by an earlier try since %s before sending the file",
            getattr(ti, "try_number", "?"),
            started.isoformat(),
        )
        return started.timestamp()

    def on_kill(self) -> None:
        hook = self.__dict__.get("hook")
        if hook is not None:
            self.log.info("Task killed: cancelling in-flight multipart uploads")
            hook.cancel_active_uploads()


class OpenAIDownloadFileOperator(OpenAIFilesMixin, BaseOperator):
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
        file_id = str(extract_file_id(self.file_id))
        return self.hook.download_file(file_id, self.destination, overwrite=self.overwrite, temp_key=task_key(context))


class OpenAIDeleteFileOperator(OpenAIFilesMixin, BaseOperator):
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
        try:
            ids = _file_ids(self.file_id)
        except ValueError as err:
            raise OpenAIFilesValidationError(f"{self.task_id}: {err}") from None
        deleted: list[str] = []
        for file_id in ids:
            result = self.hook.delete_file(file_id, missing_ok=self.missing_ok)
            if result.get("deleted"):
                deleted.append(file_id)
        self.log.info(
            "Deleted %d of %d file(s)%s", len(deleted), len(ids), f": {', '.join(deleted)}" if deleted else ""
        )
        return deleted


class OpenAIFilesCleanupOperator(OpenAIFilesMixin, BaseOperator):
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
        self.log.info(
            "%s %d file(s), %s%s",
            "Dry run: would delete" if self.is_dry_run else "Deleted",
            len(deleted),
            _size(total),
            "" if self.is_dry_run else " freed",
        )
        return deleted
