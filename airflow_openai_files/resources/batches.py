"""What a Batch object's ``status`` and ``request_counts`` mean: shared by the hook, operator, sensor and trigger.

Pure functions without Airflow or HTTP imports, so the worker and the triggerer decide identically and
the operator and sensor modules stay cheap to import when a DAG file is parsed.
"""

from __future__ import annotations

from typing import Any

#: Batch statuses after which nothing changes any more.
TERMINAL_STATUSES = ("completed", "failed", "expired", "cancelled")
#: Terminal statuses that deliver results (output and error files, either may be null).
RESULT_STATUSES = ("completed", "expired", "cancelled")


def request_counts(batch: dict[str, Any]) -> tuple[int, int, int]:
    """``(total, completed, failed)`` of a Batch object (zeros while the service has not counted yet)."""
    counts = batch.get("request_counts") or {}
    return int(counts.get("total") or 0), int(counts.get("completed") or 0), int(counts.get("failed") or 0)


def describe_batch(batch: dict[str, Any]) -> str:
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


def check_success_statuses(statuses: Any) -> tuple[str, ...]:
    """Terminal statuses only: a wait for ``in_progress`` would end before the results exist."""
    chosen = (statuses,) if isinstance(statuses, str) else tuple(statuses or ())
    unknown = [status for status in chosen if status not in TERMINAL_STATUSES]
    if not chosen or unknown:
        raise ValueError(
            f"success_statuses must be terminal statuses ({', '.join(TERMINAL_STATUSES)}); got {statuses!r}"
        )
    return chosen
