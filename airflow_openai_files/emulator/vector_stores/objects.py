"""The tables of vector stores, their files and file batches, how a file's content is judged when attached,
and how rows render as the service's objects (openai-python ``types/vector_store*.py``)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import deque
from pathlib import PurePosixPath
from typing import Any

from airflow_openai_files.emulator.vector_stores import errors

DAY = 86_400
#: Extensions ``file_search`` reads (OpenAI's file search guide, "Supported files").
SUPPORTED_EXTENSIONS = frozenset(
    [
        ".c",
        ".cpp",
        ".cs",
        ".css",
        ".doc",
        ".docx",
        ".go",
        ".html",
        ".java",
        ".js",
        ".json",
        ".md",
        ".pdf",
        ".php",
        ".pptx",
        ".py",
        ".rb",
        ".sh",
        ".tex",
        ".ts",
        ".txt",
    ]
)
#: Types whose bytes are text; binary bytes in them make the file ``invalid_file``. The others (PDF, Office)
#: are accepted without parsing: they are searchable by name only (Fidelity table).
TEXT_EXTENSIONS = SUPPORTED_EXTENSIONS - {".doc", ".docx", ".pdf", ".pptx"}
#: Text kept per file for search and ``/content`` (the rest is not indexed: Fidelity table).
TEXT_MAX_BYTES = 1024 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS vector_stores (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    name TEXT NOT NULL,
    metadata TEXT,
    expires_days INTEGER,
    last_active_ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vector_store_files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    vector_store_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    batch_id TEXT,
    created_at INTEGER NOT NULL,
    ready_ts REAL NOT NULL,
    outcome TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT,
    cancelled INTEGER NOT NULL DEFAULT 0,
    usage_bytes INTEGER NOT NULL,
    attributes TEXT,
    chunk_size INTEGER NOT NULL,
    chunk_overlap INTEGER NOT NULL,
    filename TEXT NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (vector_store_id, file_id)
);
CREATE INDEX IF NOT EXISTS vector_store_files_batch ON vector_store_files (batch_id);
CREATE TABLE IF NOT EXISTS vector_store_file_batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    vector_store_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    cancelled_ts REAL
);
"""

#: A file's status from its columns at ``:now``.
STATUS_SQL = "(CASE WHEN cancelled = 1 THEN 'cancelled' WHEN ready_ts > :now THEN 'in_progress' ELSE outcome END)"


def inspect_content(filename: str, content: bytes) -> tuple[str, str | None, str | None, str]:
    """``(outcome, error_code, error_message, text)`` of a file attached to a store."""
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        shown = suffix or "(none)"
        return "failed", "unsupported_file", f"File type {shown} is not supported for file search.", ""
    if not content:
        return "failed", "invalid_file", "The file is empty.", ""
    if suffix not in TEXT_EXTENSIONS:
        return "completed", None, None, ""
    head = content[:8192]
    try:
        if b"\x00" in head:
            raise UnicodeDecodeError("utf-8", head, 0, 1, "NUL byte")
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return "failed", "invalid_file", f"The file could not be parsed as {suffix} text (binary content).", ""
    return "completed", None, None, text


def expired(row: sqlite3.Row, now: float) -> bool:
    """A store expires ``expires_after.days`` after it was last active."""
    days = row["expires_days"]
    return days is not None and now >= row["last_active_ts"] + days * DAY


def render_store(db: sqlite3.Connection, row: sqlite3.Row, now: float) -> dict[str, Any]:
    """A VectorStore object: counts and usage from its files, ``expired`` from ``last_active_at``."""
    query = (
        f"SELECT {STATUS_SQL} AS status, COUNT(*) AS n,"
        " SUM(CASE WHEN outcome = 'completed' THEN usage_bytes ELSE 0 END) AS used"
        " FROM vector_store_files WHERE vector_store_id = :id GROUP BY 1"
    )
    counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
    used = 0
    for item in db.execute(query, {"now": now, "id": row["id"]}):
        counts[item["status"]] = item["n"]
        if item["status"] == "completed":
            used = int(item["used"] or 0)
    days = row["expires_days"]
    status = "expired" if expired(row, now) else ("in_progress" if counts["in_progress"] else "completed")
    return {
        "id": row["id"],
        "object": "vector_store",
        "created_at": row["created_at"],
        "name": row["name"],
        "usage_bytes": used,
        "file_counts": {**counts, "total": sum(counts.values())},
        "status": status,
        "expires_after": {"anchor": "last_active_at", "days": days} if days is not None else None,
        "expires_at": int(row["last_active_ts"] + days * DAY) if days is not None else None,
        "last_active_at": int(row["last_active_ts"]),
        "metadata": json.loads(row["metadata"]) if row["metadata"] else {},
    }


def status_counts(db: sqlite3.Connection, column: str, value: str, now: float) -> dict[str, int]:
    """``file_counts`` (without ``total``) of the files whose ``column`` is ``value``."""
    query = f"SELECT {STATUS_SQL} AS status, COUNT(*) AS n FROM vector_store_files WHERE {column} = :id GROUP BY 1"
    counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
    for item in db.execute(query, {"now": now, "id": value}):
        counts[item["status"]] = item["n"]
    return counts


def render_file(row: sqlite3.Row, now: float) -> dict[str, Any]:
    if row["cancelled"]:
        status = "cancelled"
    elif row["ready_ts"] > now:
        status = "in_progress"
    else:
        status = row["outcome"]
    error = None
    if status == "failed":
        error = {"code": row["error_code"], "message": row["error_message"]}
    return {
        "id": row["file_id"],
        "object": "vector_store.file",
        "usage_bytes": row["usage_bytes"] if status == "completed" else 0,
        "created_at": row["created_at"],
        "vector_store_id": row["vector_store_id"],
        "status": status,
        "last_error": error,
        "chunking_strategy": {
            "type": "static",
            "static": {"max_chunk_size_tokens": row["chunk_size"], "chunk_overlap_tokens": row["chunk_overlap"]},
        },
        "attributes": json.loads(row["attributes"]) if row["attributes"] else {},
    }


def page(
    db: sqlite3.Connection,
    table: str,
    where: str,
    params: dict[str, Any],
    limit: int,
    order: str,
    after: str | None,
    before: str | None,
    kind: str,
    id_column: str = "id",
) -> tuple[list[sqlite3.Row], bool]:
    """One page by insertion order (``seq``): ``after`` continues in ``order``, ``before`` goes back."""
    clauses, params = [where], dict(params)
    desc = order == "desc"
    for name, cursor in (("after", after), ("before", before)):
        if cursor is None:
            continue
        found = db.execute(
            f"SELECT seq FROM {table} WHERE {where} AND {id_column} = :cursor", {**params, "cursor": cursor}
        ).fetchone()
        if found is None:
            raise errors.bad_vector_store_cursor(kind, name, cursor)
        forward = (name == "after") != desc  # seq grows in this direction
        clauses.append(f"seq {'>' if forward else '<'} :{name}_seq")
        params[f"{name}_seq"] = found["seq"]
    reverse = before is not None and after is None
    direction = "DESC" if desc != reverse else "ASC"
    sql = f"SELECT * FROM {table} WHERE {' AND '.join(clauses)} ORDER BY seq {direction} LIMIT :limit"
    rows = db.execute(sql, {**params, "limit": limit + 1}).fetchall()
    has_more = len(rows) > limit
    rows = rows[:limit]
    if reverse:
        rows.reverse()
    return rows, has_more


#: Attach a file, or attach it again (a batch re-attaching a file already in the store starts it over).
UPSERT_FILE_SQL = (
    "INSERT INTO vector_store_files (vector_store_id, file_id, batch_id, created_at, ready_ts, outcome,"
    " error_code, error_message, usage_bytes, attributes, chunk_size, chunk_overlap, filename, text)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (vector_store_id, file_id) DO UPDATE SET batch_id = excluded.batch_id,"
    " created_at = excluded.created_at, ready_ts = excluded.ready_ts, outcome = excluded.outcome,"
    " error_code = excluded.error_code, error_message = excluded.error_message, cancelled = 0,"
    " usage_bytes = excluded.usage_bytes, attributes = excluded.attributes,"
    " chunk_size = excluded.chunk_size, chunk_overlap = excluded.chunk_overlap, text = excluded.text"
)


class AttachRate:
    """Files attached in the last minute, for the optional per-organisation attach limit."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def take(self, count: int, limit: int) -> bool:
        """Record ``count`` attachments now if the last minute leaves room for them."""
        now = time.monotonic()
        while self._times and self._times[0] <= now - 60:
            self._times.popleft()
        if len(self._times) + count > limit:
            return False
        self._times.extend([now] * count)
        return True

    def clear(self) -> None:
        self._times.clear()
