"""Pure steps of :class:`~airflow_openai_files.operators.batches.OpenAIBatchOperator`: argument checks,
the run's start (how far back a retry looks for an earlier try's objects), the summary it returns and
the failure policy applied to a finished batch. Kept out of the operator so the class holds only the
task's flow and each rule can be read (and tested) on its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_openai_files._compat import AirflowException, AirflowFailException
from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.limits import BATCH_COMPLETION_WINDOWS
from airflow_openai_files.resources.batches import RESULT_STATUSES, batch_errors, request_counts
from airflow_openai_files.validation import parse_duration

if TYPE_CHECKING:
    from airflow.sdk import Context


def check_max_failed(value: Any) -> int | float:
    """An int >= 0 (requests), or a float in [0, 1] (a fraction of the batch's requests)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OpenAIFilesValidationError(f"max_failed_requests must be an int or a fraction, got {value!r}")
    if (isinstance(value, int) and value < 0) or (isinstance(value, float) and not 0.0 <= value <= 1.0):
        raise OpenAIFilesValidationError(
            f"max_failed_requests must be a count >= 0 or a fraction from 0.0 to 1.0, got {value!r}"
        )
    return value


def check_shard_arguments(
    max_enqueued_tokens: Any,
    max_concurrent_batches: Any,
    max_line_attempts: Any,
    max_batch_lines: Any,
    max_batch_bytes: Any,
    expires_after: Any,
    output_expires_after: Any,
) -> None:
    """The sharded job's arguments: positive whole numbers within the service's limits (expiries 3,600..2,592,000 s)."""
    from airflow_openai_files.limits import BATCH_FILE_MAX_BYTES, BATCH_MAX_LINES
    from airflow_openai_files.validation import check_expiry

    def whole(name: str, value: Any, low: int, high: int | None, optional: bool) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            bound = f"from {low:,} to {high:,}" if high is not None else f"at least {low:,}"
            raise OpenAIFilesValidationError(f"{name} must be a whole number {bound}, got {value!r}")

    whole("max_enqueued_tokens", max_enqueued_tokens, 1, None, True)
    whole("max_concurrent_batches", max_concurrent_batches, 1, None, True)
    whole("max_line_attempts", max_line_attempts, 1, 100, False)
    whole("max_batch_lines", max_batch_lines, 1, BATCH_MAX_LINES, False)
    whole("max_batch_bytes", max_batch_bytes, 1, BATCH_FILE_MAX_BYTES, False)
    for name, value in (("expires_after", expires_after), ("output_expires_after", output_expires_after)):
        try:
            check_expiry(value)
        except OpenAIFilesValidationError as err:
            raise OpenAIFilesValidationError(f"{name}: {err.message}") from None


def allowed_failures(max_failed: int | float, total: int) -> int:
    """How many of ``total`` requests may end without an answer."""
    return int(max_failed * total) if isinstance(max_failed, float) else int(max_failed)


def check_window(window: Any) -> str:
    if window not in BATCH_COMPLETION_WINDOWS:
        raise OpenAIFilesValidationError(
            f"completion_window must be one of {', '.join(BATCH_COMPLETION_WINDOWS)}, got {window!r}"
        )
    return str(window)


def timeout_seconds(value: Any) -> float:
    duration = parse_duration(value)
    if duration is None:
        raise OpenAIFilesValidationError(f"timeout must be a positive duration, got {value!r}")
    return duration.total_seconds()


def run_started(context: Context) -> float | None:
    """When the DAG run started (or was queued), as a unix time: nothing an earlier try created is older."""
    dag_run = context.get("dag_run")
    started = getattr(dag_run, "start_date", None) or getattr(dag_run, "queued_at", None)
    return started.timestamp() if started is not None else None


def batch_summary(batch: dict[str, Any], output_path: str | None, error_path: str | None) -> dict[str, Any]:
    """What the operator returns (``multiple_outputs``) for a finished batch."""
    total, completed, failed = request_counts(batch)
    return {
        "batch_id": batch["id"],
        "status": batch.get("status"),
        "request_counts": {"total": total, "completed": completed, "failed": failed},
        "input_file_id": batch.get("input_file_id"),
        "output_file_id": batch.get("output_file_id"),
        "error_file_id": batch.get("error_file_id"),
        "output_path": output_path,
        "error_path": error_path,
    }


def judge_batch(
    task_id: str, batch: dict[str, Any], max_failed_requests: int | float, error_path: str | None
) -> tuple[int, int]:
    """
    Apply the failure policy to a batch in a terminal status; return ``(unanswered, allowed)``.

    ``failed`` and too many requests without an answer raise :class:`AirflowFailException` (the same
    input cannot heal by a retry); a status without results (``cancelled`` before any) raises
    :class:`AirflowException`. The message says where the error file is, so on call starts there.
    """
    status = batch.get("status")
    if status == "failed":
        raise AirflowFailException(f"{task_id}: batch {batch['id']} failed: {batch_errors(batch)}")
    if status not in RESULT_STATUSES:
        raise AirflowException(f"{task_id}: batch {batch['id']} is {status}, not finished")
    total, completed, failed = request_counts(batch)
    unanswered = max(0, total - completed)
    allowed = allowed_failures(max_failed_requests, total)
    if unanswered > allowed:
        error_file = batch.get("error_file_id")
        where = f"; see {error_path}" if error_path else (f"; error file {error_file}" if error_file else "")
        raise AirflowFailException(
            f"{task_id}: batch {batch['id']} ended {status} with {unanswered} of {total} requests "
            f"without an answer ({failed} failed), more than max_failed_requests={max_failed_requests!r} "
            f"allows ({allowed}){where}"
        )
    return unanswered, allowed
