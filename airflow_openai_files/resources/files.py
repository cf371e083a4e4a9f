"""What a File object's ``status`` means for a wait: shared by the sensor (worker) and the trigger (triggerer).

Pure functions without Airflow or HTTP imports, so both sides decide identically and the sensor module
stays cheap to import.
"""

from __future__ import annotations

from typing import Any, Literal

# ``uploaded`` -> ``processed`` | ``error``; the older docs also name ``pending``, ``deleting`` and ``deleted``.
TARGET_STATUSES = ("uploaded", "processed")
_PROGRESS = {"pending": 0, "uploaded": 1, "processed": 2}
_GONE = ("deleting", "deleted")

Outcome = Literal["success", "error", "waiting"]


def check_target_status(target_status: Any) -> str:
    """Refuse a target the API never reports as a resting state."""
    if target_status not in TARGET_STATUSES:
        raise ValueError(f"target_status must be one of {', '.join(TARGET_STATUSES)}; got {target_status!r}")
    return str(target_status)


def evaluate(file: dict[str, Any], target_status: str) -> tuple[Outcome, str]:
    """
    Decide whether a wait for ``target_status`` is over.

    :return: ``("success", ...)`` once the file reached (or passed) the target, ``("error", message)``
        when it never will (status ``error`` with its ``status_details``, or a deleted file), else
        ``("waiting", message)``.
    """
    file_id = file.get("id", "?")
    status = str(file.get("status") or "")
    if status == "error":
        details = file.get("status_details") or "no status_details given"
        return "error", f"File {file_id} ({file.get('filename')}) failed processing: {details}"
    if status in _GONE:
        return "error", f"File {file_id} is {status}: it will never become {target_status}"
    reached = _PROGRESS.get(status)
    if reached is not None and reached >= _PROGRESS[target_status]:
        return "success", f"File {file_id} is {status} ({file.get('bytes')} bytes, {file.get('filename')})"
    return "waiting", f"File {file_id} is {status or 'of unknown status'}; waiting for {target_status}"


def extract_file_id(value: Any) -> Any:
    """Accept a File object dict (e.g. an upload's whole XCom) where a file id is expected."""
    if isinstance(value, dict) and "id" in value:
        return value["id"]
    return value


def not_found_message(file_id: str) -> str:
    """How a 404 for a file reads (the transports add the status and the request id)."""
    return (
        f"File {file_id} does not exist (HTTP 404): check the id; the file may have been deleted, may have "
        "expired, or may belong to another organization or project"
    )
