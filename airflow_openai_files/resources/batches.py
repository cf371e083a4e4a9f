"""What a Batch object's ``status`` and ``request_counts`` mean: read by the hook, operator, sensor and trigger.

Pure (no Airflow, no HTTP), the shape every module of :mod:`airflow_openai_files.resources` has, so the
worker and the triggerer decide identically and DAG files that import the operator stay cheap to parse.
"""

from __future__ import annotations

from typing import Any

from airflow_openai_files.limits import BATCH_ID_RE
from airflow_openai_files.resources import Verdict, check_statuses

KIND = "batch"
ID_PATTERN = BATCH_ID_RE

#: Batch statuses after which nothing changes any more.
TERMINAL = ("completed", "failed", "expired", "cancelled")
SUCCESS = ("completed",)
FAILURE = ("failed", "expired", "cancelled")
#: Terminal statuses that deliver results (output and error files, either may be null).
RESULT_STATUSES = ("completed", "expired", "cancelled")


def check_target(statuses: Any) -> tuple[str, ...]:
    """Terminal statuses only: a wait for ``in_progress`` would end before the results exist."""
    return check_statuses(statuses, TERMINAL, "success_statuses")


def request_counts(batch: dict[str, Any]) -> tuple[int, int, int]:
    """``(total, completed, failed)`` of a Batch object (zeros while the service has not counted yet)."""
    counts = batch.get("request_counts") or {}
    return int(counts.get("total") or 0), int(counts.get("completed") or 0), int(counts.get("failed") or 0)


def describe(batch: dict[str, Any]) -> str:
    """``"Batch batch_abc is in_progress: 120/500 requests done, 117 succeeded, 3 failed"``."""
    total, completed, failed = request_counts(batch)
    return (
        f"Batch {batch.get('id')} is {batch.get('status')}: {completed + failed}/{total} requests done, "
        f"{completed} succeeded, {failed} failed"
    )


def batch_errors(batch: dict[str, Any], limit: int = 20) -> str:
    """The service's ``errors.data`` as ``"line 3: invalid_request (message); ..."`` (first ``limit``)."""
    data = (batch.get("errors") or {}).get("data") or []
    parts = []
    for error in data[:limit]:
        line = error.get("line")
        where = f"line {line}: " if line is not None else ""
        parts.append(f"{where}{error.get('code')} ({error.get('message')})")
    if len(data) > limit:
        parts.append(f"... and {len(data) - limit} more")
    return "; ".join(parts) or "the service gave no details"


def judge(batch: dict[str, Any], target: tuple[str, ...] = SUCCESS) -> Verdict:
    """``success`` in a ``target`` status, ``error`` in another terminal one (``failed``: with the
    service's ``errors.data``), else ``waiting``."""
    status = batch.get("status")
    message = describe(batch)
    if status in target:
        return Verdict("success", message)
    if status in TERMINAL:
        if status == "failed":
            message += f"; errors: {batch_errors(batch)}"
        return Verdict("error", message)
    return Verdict("waiting", message)


def not_found_message(batch_id: str) -> str:
    """How a 404 for a batch reads (the transports add the status and the request id)."""
    return (
        f"Batch {batch_id} does not exist (HTTP 404): check the id and that the connection points at the "
        "organization and project that created it"
    )


def allowed_failures(max_failed: int | float, total: int) -> int:
    """How many of ``total`` requests may end without an answer (``max_failed``: a count, or a fraction)."""
    return int(max_failed * total) if isinstance(max_failed, float) else int(max_failed)


def batch_summary(batch: dict[str, Any], output_path: str | None, error_path: str | None) -> dict[str, Any]:
    """What the batch operator returns (``multiple_outputs``) for a finished batch."""
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
    batch: dict[str, Any], max_failed_requests: int | float, error_path: str | None
) -> tuple[str, str, int, int]:
    """
    The failure policy applied to a batch in a terminal status: ``(verdict, message, unanswered, allowed)``.

    ``verdict`` is ``"failed"`` for a ``failed`` batch or one with more requests without an answer than
    ``max_failed_requests`` allows (the same input cannot heal by a retry), ``"unfinished"`` for a status
    without results, else ``"success"``. The message says where the error file is, so on call starts there.
    """
    status = batch.get("status")
    if status == "failed":
        return "failed", f"batch {batch['id']} failed: {batch_errors(batch)}", 0, 0
    if status not in RESULT_STATUSES:
        return "unfinished", f"batch {batch['id']} is {status}, not finished", 0, 0
    total, completed, failed = request_counts(batch)
    unanswered = max(0, total - completed)
    allowed = allowed_failures(max_failed_requests, total)
    if unanswered > allowed:
        error_file = batch.get("error_file_id")
        where = f"; see {error_path}" if error_path else (f"; error file {error_file}" if error_file else "")
        return (
            "failed",
            f"batch {batch['id']} ended {status} with {unanswered} of {total} requests without an answer "
            f"({failed} failed), more than max_failed_requests={max_failed_requests!r} allows ({allowed}){where}",
            unanswered,
            allowed,
        )
    return "success", f"batch {batch['id']} ended {status}", unanswered, allowed


# -- jobs of many batches (shards): pure rules read by the operator, the multi-batch trigger and the emulator --

#: ``errors.data[].code`` of a batch the service refused because the model's enqueued tokens are over the
#: organization's limit (openai-python issue 2084; Azure Q&A 2285577): the batch is created, then ``failed``.
TOKEN_LIMIT_EXCEEDED = "token_limit_exceeded"
#: Line statuses worth sending again: rate limited, timed out, or the server's trouble (as client/retry.py).
RETRYABLE_LINE_STATUSES = frozenset({408, 409, 429})
#: Line error codes worth sending again: the batch's window ran out before the line was run.
RETRYABLE_LINE_CODES = frozenset({"batch_expired"})
#: A 429 with this code is a billing stop (reference notes, Errors): sending again cannot help.
BILLING_CODES = frozenset({"insufficient_quota"})


def is_token_refusal(batch: dict[str, Any]) -> bool:
    """True for a ``failed`` batch whose errors say the enqueued-token limit was reached (not its input)."""
    if batch.get("status") != "failed":
        return False
    data = (batch.get("errors") or {}).get("data") or []
    return bool(data) and all(error.get("code") == TOKEN_LIMIT_EXCEEDED for error in data)


def line_status(line: dict[str, Any]) -> int | None:
    """The HTTP-like status of a result line (``response.status_code``), None for a line without a response."""
    response = line.get("response")
    if isinstance(response, dict) and isinstance(response.get("status_code"), int):
        return int(response["status_code"])
    return None


def line_error_code(line: dict[str, Any]) -> str | None:
    """``error.code`` of a line the batch did not run, or the code in its response body's ``error``."""
    error = line.get("error")
    if isinstance(error, dict) and error.get("code"):
        return str(error["code"])
    response = line.get("response")
    body = response.get("body") if isinstance(response, dict) else None
    inner = body.get("error") if isinstance(body, dict) else None
    if isinstance(inner, dict) and inner.get("code"):
        return str(inner["code"])
    return None


def is_retryable_line(line: dict[str, Any]) -> bool:
    """
    Whether an error-file line may succeed if sent again.

    Retryable: 429 (but not ``insufficient_quota``), 408, 409, 5xx, and lines an ``expired`` batch never
    ran (``batch_expired``). Deterministic: every other 4xx (the request itself is wrong) and
    ``batch_cancelled`` (somebody cancelled the work on purpose).
    """
    code = line_error_code(line)
    if code in RETRYABLE_LINE_CODES:
        return True
    status = line_status(line)
    if status is None:
        return False
    if code in BILLING_CODES:
        return False
    return status in RETRYABLE_LINE_STATUSES or status >= 500


def backoff_seconds(refusals: int, base: float, cap: float) -> float:
    """How long a refused shard waits before it is submitted again: ``base * 2**(refusals - 1)``, at most ``cap``."""
    if refusals <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(refusals - 1, 30)))


def admit(
    queued: list[tuple[str, int]],
    in_flight_tokens: int,
    in_flight: int,
    *,
    max_enqueued_tokens: int | None,
    max_concurrent_batches: int | None,
) -> list[str]:
    """
    Which queued shards (``(key, estimated tokens)``, in order) may be submitted now.

    In order and without skipping: a shard that does not fit blocks the ones after it, so a big shard is
    not starved by small ones. ``None`` limits are unlimited. A shard that alone exceeds the token budget
    is admitted only when nothing else is in flight (the splitter never makes one; a retry shard could).
    """
    chosen: list[str] = []
    tokens, running = in_flight_tokens, in_flight
    for key, estimate in queued:
        if max_concurrent_batches is not None and running >= max_concurrent_batches:
            break
        if max_enqueued_tokens is not None and tokens + estimate > max_enqueued_tokens and running > 0:
            break
        chosen.append(key)
        tokens += estimate
        running += 1
    return chosen


def describe_shards(
    in_flight: list[dict[str, Any]], answered: tuple[int, int], total_lines: int, shards: int, finished: int
) -> str:
    """``"Shards: 3/20 finished, 4 in flight; requests 120,000/1,000,000 done (119,990 succeeded, 10 failed)"``.

    ``answered`` is ``(completed, failed)`` already counted for finished batches; ``in_flight`` the running ones'
    Batch objects, whose ``request_counts`` are added.
    """
    completed, failed = answered
    for batch in in_flight:
        _, c, f = request_counts(batch)
        completed, failed = completed + c, failed + f
    return (
        f"Shards: {finished}/{shards} finished, {len(in_flight)} in flight; requests {completed + failed:,}/"
        f"{total_lines:,} done ({completed:,} succeeded, {failed:,} failed)"
    )
