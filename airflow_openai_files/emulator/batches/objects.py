"""The Batch object: its table and how a row renders (the fields of the SDK's ``Batch`` type)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from airflow_openai_files.limits import BATCH_COMPLETION_WINDOW_SECONDS

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_ts REAL NOT NULL,
    endpoint TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    metadata TEXT,
    output_expires_after INTEGER,
    status TEXT NOT NULL,
    model TEXT,
    errors TEXT,
    total INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    enqueued_tokens INTEGER NOT NULL DEFAULT 0,
    in_progress_ts REAL,
    duration REAL,
    done INTEGER NOT NULL DEFAULT 0,
    input_offset INTEGER NOT NULL DEFAULT 0,
    out_bytes INTEGER NOT NULL DEFAULT 0,
    err_bytes INTEGER NOT NULL DEFAULT 0,
    finalizing_ts REAL,
    cancelling_ts REAL,
    ended_ts REAL,
    output_file_id TEXT,
    error_file_id TEXT
);
CREATE INDEX IF NOT EXISTS batches_active ON batches (status);
"""


def _ts(value: float | None) -> int | None:
    return int(value) if value is not None else None


def render_batch(row: sqlite3.Row) -> dict[str, Any]:
    """The Batch object as the API shows it."""
    status = row["status"]
    ended = _ts(row["ended_ts"])
    created_at = int(row["created_ts"])
    window = BATCH_COMPLETION_WINDOW_SECONDS[row["completion_window"]]
    return {
        "id": row["id"],
        "object": "batch",
        "endpoint": row["endpoint"],
        "model": row["model"],
        "errors": json.loads(row["errors"]) if row["errors"] else None,
        "input_file_id": row["input_file_id"],
        "completion_window": row["completion_window"],
        "status": status,
        "output_file_id": row["output_file_id"],
        "error_file_id": row["error_file_id"],
        "created_at": created_at,
        "in_progress_at": _ts(row["in_progress_ts"]),
        # The API reference's example of a new batch has "expires_at": null; later ones have it.
        "expires_at": None if status == "validating" else created_at + window,
        "finalizing_at": _ts(row["finalizing_ts"]),
        "completed_at": ended if status == "completed" else None,
        "failed_at": ended if status == "failed" else None,
        "expired_at": ended if status == "expired" else None,
        "cancelling_at": _ts(row["cancelling_ts"]),
        "cancelled_at": ended if status == "cancelled" else None,
        "request_counts": {"total": row["total"], "completed": row["completed"], "failed": row["failed"]},
        "usage": {
            "input_tokens": row["input_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": row["output_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": row["input_tokens"] + row["output_tokens"],
        },
        "metadata": json.loads(row["metadata"]) if row["metadata"] is not None else None,
    }
