"""What vector stores, their files and file batches report: statuses, counts, errors, and the attribute names
the sync operator records. Shared by the hook, the operator, the sensor, the trigger and the emulator.

Pure functions without Airflow or HTTP imports, so the worker and the triggerer judge identically.

Statuses (openai-python ``types/vector_store.py``, ``types/vector_stores/vector_store_file*.py``):

* a vector store is ``expired``, ``in_progress`` or ``completed``;
* a vector store file and a file batch are ``in_progress``, ``completed``, ``cancelled`` or ``failed``;
  a failed file carries ``last_error = {"code": "server_error" | "unsupported_file" | "invalid_file",
  "message"}``.
"""

from __future__ import annotations

from typing import Any

from airflow_openai_files.limits import VECTOR_STORE_FILE_BATCH_ID_RE
from airflow_openai_files.resources import Verdict, check_statuses

#: What the sensor and trigger wait for (the module shape of :mod:`airflow_openai_files.resources`).
KIND = "vector store file batch"
ID_PATTERN = VECTOR_STORE_FILE_BATCH_ID_RE

STORE_STATUSES = ("expired", "in_progress", "completed")
FILE_STATUSES = ("in_progress", "completed", "cancelled", "failed")
BATCH_STATUSES = FILE_STATUSES
#: Statuses after which a vector store file or a file batch never changes.
TERMINAL_STATUSES = ("completed", "cancelled", "failed")
TERMINAL = TERMINAL_STATUSES
SUCCESS = ("completed",)
FAILURE = ("failed", "cancelled")
#: ``last_error.code`` of a failed vector store file.
ERROR_CODES = ("server_error", "unsupported_file", "invalid_file")

#: Attribute holding the SHA-256 of the file's content, set by the sync operator on every file it attaches.
#: The store is the record: a later run compares these with the source and sends only what changed.
HASH_ATTRIBUTE = "openai_files_sha256"
#: Attribute holding the file's path relative to the synced source (POSIX separators, at most 512 characters).
PATH_ATTRIBUTE = "openai_files_path"
#: The attributes the sync reserves out of the service's 16.
RESERVED_ATTRIBUTES = (HASH_ATTRIBUTE, PATH_ATTRIBUTE)


def check_target(statuses: Any) -> tuple[str, ...]:
    """A file batch wait ends on ``completed`` only (``failed`` / ``cancelled`` are failures)."""
    return check_statuses(statuses, SUCCESS, "the target status of a file batch")


def file_counts(obj: dict[str, Any]) -> dict[str, int]:
    """``file_counts`` of a store or a batch, zeros where the service has not counted yet."""
    counts = obj.get("file_counts") or {}
    return {key: int(counts.get(key) or 0) for key in ("in_progress", "completed", "failed", "cancelled", "total")}


def describe_store(store: dict[str, Any]) -> str:
    """``"Vector store vs_abc (docs) is completed: 12 files (12 completed, 0 failed), 34567 bytes used"``."""
    counts = file_counts(store)
    return (
        f"Vector store {store.get('id')} ({store.get('name')}) is {store.get('status')}: {counts['total']} files "
        f"({counts['completed']} completed, {counts['in_progress']} in progress, {counts['failed']} failed, "
        f"{counts['cancelled']} cancelled), {store.get('usage_bytes') or 0} bytes used"
    )


def describe_batch(batch: dict[str, Any]) -> str:
    """``"File batch vsfb_abc of vs_abc is in_progress: 3/10 files done, 2 completed, 1 failed, 0 cancelled"``."""
    counts = file_counts(batch)
    done = counts["completed"] + counts["failed"] + counts["cancelled"]
    return (
        f"File batch {batch.get('id')} of {batch.get('vector_store_id')} is {batch.get('status')}: "
        f"{done}/{counts['total']} files done, {counts['completed']} completed, {counts['failed']} failed, "
        f"{counts['cancelled']} cancelled"
    )


def describe_file_error(file: dict[str, Any]) -> str:
    """``"file-abc (docs/a.md): invalid_file (The file is empty.)"``: a failed file and its ``last_error``."""
    error = file.get("last_error") or {}
    path = (file.get("attributes") or {}).get(PATH_ATTRIBUTE)
    where = f" ({path})" if path else ""
    code = error.get("code") or file.get("status")
    return f"{file.get('id')}{where}: {code} ({error.get('message') or 'no message'})"


def judge(batch: dict[str, Any], target: tuple[str, ...] = SUCCESS) -> Verdict:
    """
    Whether a wait for a file batch is over.

    ``success`` once it is ``completed`` (some files may still have failed: the counts say how many, and
    the caller decides with ``max_failed_files``); ``error`` when ``failed`` or ``cancelled``; else ``waiting``.
    """
    status = batch.get("status")
    message = describe_batch(batch)
    if status in target:
        return Verdict("success", message)
    if status in TERMINAL:
        return Verdict("error", message)
    return Verdict("waiting", message)


describe = describe_batch


def judge_file(file: dict[str, Any]) -> Verdict:
    """The same for one vector store file; an ``error`` names its ``last_error``."""
    status = file.get("status")
    if status == "completed":
        return Verdict("success", f"Vector store file {file.get('id')} is completed ({file.get('usage_bytes')} bytes)")
    if status in FAILURE:
        return Verdict("error", f"Vector store file {describe_file_error(file)} is {status}")
    return Verdict("waiting", f"Vector store file {file.get('id')} is {status}")


def not_found_message(object_id: str) -> str:
    """404 of a vector store (or of an object in it), with what usually causes it."""
    return (
        f"Vector store {object_id} (or the file or file batch asked for in it) does not exist (HTTP 404): check the"
        " id; it may have been deleted or detached, may have expired (a store expires after its expires_after"
        " days of inactivity), or may belong to another project"
    )
