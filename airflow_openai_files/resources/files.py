"""What a File object's ``status`` means: read by the hook, operators, the file sensor and its trigger.

Pure (no Airflow, no HTTP), the shape every module of :mod:`airflow_openai_files.resources` has.
Statuses: ``uploaded`` -> ``processed`` | ``error``; the older docs also name ``pending``,
``deleting`` and ``deleted``. A wait for ``uploaded`` is also over once the file is ``processed``
(the target is a point on the way, not an exact status).
"""

from __future__ import annotations

from typing import Any

from airflow_openai_files.limits import FILE_ID_PREFIX, FILE_ID_RE
from airflow_openai_files.resources import Verdict, check_statuses

KIND = "file"
ID_PATTERN = FILE_ID_RE
ID_PREFIX = FILE_ID_PREFIX
#: Azure OpenAI's statuses while it imports a file (before ``processed`` or ``error``; OpenAI says ``uploaded``).
AZURE_WAITING = ("pending", "running")

#: The statuses a wait can target, in the order a file reaches them.
TARGETS = ("uploaded", "processed")
SUCCESS = ("processed",)
#: A file in one of these will never be usable (for a job, a batch, a reuse by a retried upload).
FAILURE = ("error", "deleting", "deleted")
TERMINAL = ("processed", "error", "deleted")
_PROGRESS = {"pending": 0, "uploaded": 1, "processed": 2}


def check_target(statuses: Any) -> tuple[str, ...]:
    """The statuses that end a wait for ``statuses`` (``"uploaded"`` -> ``("uploaded", "processed")``)."""
    chosen = check_statuses(statuses, TARGETS, "target_status")
    lowest = min(_PROGRESS[status] for status in chosen)
    return tuple(status for status in TARGETS if _PROGRESS[status] >= lowest)


def describe(file: dict[str, Any]) -> str:
    """``"File file-abc is processed (train.jsonl, 1234 bytes)"``."""
    return (
        f"File {file.get('id', '?')} is {file.get('status') or 'of unknown status'} "
        f"({file.get('filename')}, {file.get('bytes')} bytes)"
    )


def judge(file: dict[str, Any], target: tuple[str, ...] = SUCCESS) -> Verdict:
    """
    Is a wait for ``target`` (from :func:`check_target`) over?

    ``success`` once the file reached (or passed) the target; ``error`` when it never will (status
    ``error`` with its ``status_details``, or a deleted file); else ``waiting``.
    """
    file_id = file.get("id", "?")
    status = str(file.get("status") or "")
    wanted = target[0] if target else "processed"
    if status == "error":
        details = file.get("status_details") or "no status_details given"
        return Verdict("error", f"File {file_id} ({file.get('filename')}) failed processing: {details}")
    if status in FAILURE:
        return Verdict("error", f"File {file_id} is {status}: it will never become {wanted}")
    if status in target:
        return Verdict("success", describe(file))
    return Verdict("waiting", f"File {file_id} is {status or 'of unknown status'}; waiting for {wanted}")


def not_found_message(file_id: str) -> str:
    """How a 404 for a file reads (the transports add the status and the request id)."""
    return (
        f"File {file_id} does not exist (HTTP 404): check the id; the file may have been deleted, may have "
        "expired, or may belong to another organization or project"
    )


def extract_file_id(value: Any) -> Any:
    """Accept a File object dict (e.g. an upload's whole XCom) where a file id is expected."""
    if isinstance(value, dict) and "id" in value:
        return value["id"]
    return value


def looks_like_file_id(value: Any) -> bool:
    """True for an operator argument that names a file on the service rather than a file to upload."""
    from airflow_openai_files.limits import FILE_ID_ARGUMENT_RE

    return isinstance(value, str) and FILE_ID_ARGUMENT_RE.match(value.strip()) is not None
