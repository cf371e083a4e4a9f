"""Vector stores, their files and file batches: rows in SQLite and a lifecycle on the emulator's clock.

Lazy and deterministic like the batches backend: nothing runs in the background. A file attached at ``t``
is ``in_progress`` until ``t + vector_store_file_seconds`` (configuration), then shows the outcome decided
when it was attached (its content is read once, then): ``completed``, or ``failed`` with ``last_error``
(``invalid_file`` for an empty file or binary bytes in a text type, ``unsupported_file`` for an extension
``file_search`` does not read). A cancelled batch's unfinished files read ``cancelled``. Statuses are
computed in SQL from those columns, so lists filter and page without reading every row in Python.

A store is ``in_progress`` while one of its files is, else ``completed``; ``expired`` once
``last_active_at + expires_after.days`` has passed (``last_active_at`` moves on every attach, modify and
search). ``usage_bytes`` of a completed file is its size (the service counts its parsed chunks and
embeddings, a different figure: Fidelity table). Search ranks chunks lexically (see :mod:`.search`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import deque
from pathlib import PurePosixPath
from typing import Any

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.db import new_id
from airflow_openai_files.emulator.core.state import Backend, EmulatorState
from airflow_openai_files.emulator.vector_stores import search
from airflow_openai_files.limits import (
    CHUNK_OVERLAP_DEFAULT,
    CHUNK_SIZE_DEFAULT,
    FILE_ID_RE,
    VECTOR_STORE_FILE_BATCH_ID_RE,
    VECTOR_STORE_ID_RE,
)

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


def _inspect(filename: str, content: bytes) -> tuple[str, str | None, str | None, str]:
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


class VectorStoresBackend(Backend):
    name = "vector_stores"
    SCHEMA = SCHEMA

    def __init__(self, state: EmulatorState) -> None:
        super().__init__(state)
        self.files = state.backend("files")
        self._lock = threading.RLock()
        self._attaches: deque[float] = deque()

    # ---- stores -----------------------------------------------------------------------------------
    def _store_row(self, store_id: str) -> sqlite3.Row:
        row = None
        if VECTOR_STORE_ID_RE.match(store_id):
            row = self.db.connection().execute("SELECT * FROM vector_stores WHERE id = ?", (store_id,)).fetchone()
        if row is None:
            raise errors.no_such_vector_store(store_id)
        return row

    def _expired(self, row: sqlite3.Row, now: float) -> bool:
        days = row["expires_days"]
        return days is not None and now >= row["last_active_ts"] + days * DAY

    def _usable_store(self, store_id: str) -> sqlite3.Row:
        row = self._store_row(store_id)
        if self._expired(row, self.clock.now()):
            raise errors.vector_store_expired(store_id)
        return row

    def _touch(self, store_id: str) -> None:
        with self.db.write() as db:
            db.execute("UPDATE vector_stores SET last_active_ts = ? WHERE id = ?", (self.clock.now(), store_id))

    def render_store(self, row: sqlite3.Row) -> dict[str, Any]:
        now = self.clock.now()
        query = (
            f"SELECT {STATUS_SQL} AS status, COUNT(*) AS n,"
            " SUM(CASE WHEN outcome = 'completed' THEN usage_bytes ELSE 0 END) AS used"
            " FROM vector_store_files WHERE vector_store_id = :id GROUP BY 1"
        )
        counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
        used = 0
        for item in self.db.connection().execute(query, {"now": now, "id": row["id"]}):
            counts[item["status"]] = item["n"]
            if item["status"] == "completed":
                used = int(item["used"] or 0)
        days = row["expires_days"]
        expired = self._expired(row, now)
        status = "expired" if expired else ("in_progress" if counts["in_progress"] else "completed")
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

    def create_store(
        self,
        *,
        name: str | None,
        metadata: dict[str, str] | None,
        expires_days: int | None,
        file_ids: list[str],
        chunking: dict[str, Any] | None,
    ) -> dict[str, Any]:
        for file_id in file_ids:  # every file must exist before anything is created
            self._file_source(file_id)
        store_id = new_id("vs_")
        now = self.clock.now()
        with self._lock, self.db.write() as db:
            db.execute(
                "INSERT INTO vector_stores (id, created_at, name, metadata, expires_days, last_active_ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (store_id, int(now), name or "", json.dumps(metadata) if metadata else None, expires_days, now),
            )
        for file_id in file_ids:
            self._attach(store_id, file_id, attributes=None, chunking=chunking, batch_id=None)
        return self.render_store(self._store_row(store_id))

    def get_store(self, store_id: str) -> dict[str, Any]:
        return self.render_store(self._store_row(store_id))

    def modify_store(self, store_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        row = self._store_row(store_id)
        values: dict[str, Any] = {}
        if "name" in changes and changes["name"] is not None:
            values["name"] = changes["name"]
        if "metadata" in changes:
            values["metadata"] = json.dumps(changes["metadata"]) if changes["metadata"] else None
        if "expires_days" in changes:
            values["expires_days"] = changes["expires_days"]
        if not self._expired(row, self.clock.now()):  # an expired store stays expired
            values["last_active_ts"] = self.clock.now()
        columns = ", ".join(f"{name} = ?" for name in values)
        with self.db.write() as db:
            db.execute(f"UPDATE vector_stores SET {columns} WHERE id = ?", (*values.values(), store_id))
        return self.get_store(store_id)

    def delete_store(self, store_id: str) -> dict[str, Any]:
        self._store_row(store_id)
        with self._lock, self.db.write() as db:
            db.execute("DELETE FROM vector_store_files WHERE vector_store_id = ?", (store_id,))
            db.execute("DELETE FROM vector_store_file_batches WHERE vector_store_id = ?", (store_id,))
            db.execute("DELETE FROM vector_stores WHERE id = ?", (store_id,))
        return {"id": store_id, "object": "vector_store.deleted", "deleted": True}

    def list_stores(
        self, *, limit: int, order: str, after: str | None, before: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        rows, has_more = self._page("vector_stores", "1 = 1", {}, limit, order, after, before, "vector store")
        return [self.render_store(row) for row in rows], has_more

    # ---- paging (shared) ----------------------------------------------------------------------------
    def _page(
        self,
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
        db = self.db.connection()
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

    # ---- files --------------------------------------------------------------------------------------
    def _file_source(self, file_id: str) -> tuple[dict[str, Any], Any]:
        if not isinstance(file_id, str) or not FILE_ID_RE.match(file_id):
            raise errors.no_such_file(str(file_id), param="file_id")
        try:
            file = self.files.get_file(file_id)
            path = self.files.content_path(file_id)
        except errors.EmulatorError:
            raise errors.no_such_file(file_id, param="file_id") from None
        return file, path

    def _check_attach_rate(self, count: int) -> None:
        limit = self.config.vector_store_attach_per_minute
        if limit is None:
            return
        now = time.monotonic()
        while self._attaches and self._attaches[0] <= now - 60:
            self._attaches.popleft()
        if len(self._attaches) + count > limit:
            raise errors.vector_store_attach_rate(limit)
        self._attaches.extend([now] * count)

    def _attach(
        self,
        store_id: str,
        file_id: str,
        *,
        attributes: dict[str, Any] | None,
        chunking: dict[str, Any] | None,
        batch_id: str | None,
    ) -> None:
        file, path = self._file_source(file_id)
        with open(path, "rb") as handle:
            content = handle.read(TEXT_MAX_BYTES)
        outcome, code, message, text = _inspect(file["filename"], content)
        static = (chunking or {}).get("static") or {}
        now = self.clock.now()
        with self.db.write() as db:
            db.execute(
                "INSERT INTO vector_store_files (vector_store_id, file_id, batch_id, created_at, ready_ts, outcome,"
                " error_code, error_message, usage_bytes, attributes, chunk_size, chunk_overlap, filename, text)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (vector_store_id, file_id) DO UPDATE SET batch_id = excluded.batch_id,"
                " created_at = excluded.created_at, ready_ts = excluded.ready_ts, outcome = excluded.outcome,"
                " error_code = excluded.error_code, error_message = excluded.error_message, cancelled = 0,"
                " usage_bytes = excluded.usage_bytes, attributes = excluded.attributes,"
                " chunk_size = excluded.chunk_size, chunk_overlap = excluded.chunk_overlap, text = excluded.text",
                (
                    store_id,
                    file_id,
                    batch_id,
                    int(now),
                    now + self.config.vector_store_file_seconds,
                    outcome,
                    code,
                    message,
                    int(file["bytes"]) if outcome == "completed" else 0,
                    json.dumps(attributes) if attributes is not None else None,
                    static.get("max_chunk_size_tokens", CHUNK_SIZE_DEFAULT),
                    static.get("chunk_overlap_tokens", CHUNK_OVERLAP_DEFAULT),
                    file["filename"],
                    text,
                ),
            )
            db.execute("UPDATE vector_stores SET last_active_ts = ? WHERE id = ?", (now, store_id))

    def render_file(self, row: sqlite3.Row, now: float | None = None) -> dict[str, Any]:
        now = self.clock.now() if now is None else now
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

    def _file_row(self, store_id: str, file_id: str) -> sqlite3.Row:
        self._store_row(store_id)
        row = (
            self.db.connection()
            .execute("SELECT * FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?", (store_id, file_id))
            .fetchone()
        )
        if row is None:
            raise errors.no_such_vector_store_file(store_id, file_id)
        return row

    def attach_file(
        self, store_id: str, file_id: str, attributes: dict[str, Any] | None, chunking: dict[str, Any] | None
    ) -> dict[str, Any]:
        self._usable_store(store_id)
        with self._lock:
            self._check_attach_rate(1)
            self._attach(store_id, file_id, attributes=attributes, chunking=chunking, batch_id=None)
        return self.render_file(self._file_row(store_id, file_id))

    def get_file(self, store_id: str, file_id: str) -> dict[str, Any]:
        return self.render_file(self._file_row(store_id, file_id))

    def update_file(self, store_id: str, file_id: str, attributes: dict[str, Any] | None) -> dict[str, Any]:
        self._file_row(store_id, file_id)
        with self.db.write() as db:
            db.execute(
                "UPDATE vector_store_files SET attributes = ? WHERE vector_store_id = ? AND file_id = ?",
                (json.dumps(attributes) if attributes is not None else None, store_id, file_id),
            )
        self._touch(store_id)
        return self.get_file(store_id, file_id)

    def detach_file(self, store_id: str, file_id: str) -> dict[str, Any]:
        self._file_row(store_id, file_id)
        with self.db.write() as db:
            db.execute("DELETE FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?", (store_id, file_id))
        return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}

    def file_content(self, store_id: str, file_id: str) -> list[dict[str, Any]]:
        row = self._file_row(store_id, file_id)
        return [{"type": "text", "text": row["text"]}] if row["text"] else []

    def list_files(
        self,
        store_id: str,
        *,
        limit: int,
        order: str,
        after: str | None,
        before: str | None,
        status: str | None,
        batch_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        self._store_row(store_id)
        now = self.clock.now()
        where = "vector_store_id = :store"
        params: dict[str, Any] = {"store": store_id, "now": now}
        if status is not None:
            where += f" AND {STATUS_SQL} = :status"
            params["status"] = status
        if batch_id is not None:
            where += " AND batch_id = :batch"
            params["batch"] = batch_id
        rows, has_more = self._page(
            "vector_store_files", where, params, limit, order, after, before, "vector store file", "file_id"
        )
        return [self.render_file(row, now) for row in rows], has_more

    # ---- file batches -------------------------------------------------------------------------------
    def _batch_row(self, store_id: str, batch_id: str) -> sqlite3.Row:
        self._store_row(store_id)
        row = None
        if VECTOR_STORE_FILE_BATCH_ID_RE.match(batch_id):
            row = (
                self.db.connection()
                .execute(
                    "SELECT * FROM vector_store_file_batches WHERE id = ? AND vector_store_id = ?", (batch_id, store_id)
                )
                .fetchone()
            )
        if row is None:
            raise errors.no_such_vector_store_file_batch(batch_id)
        return row

    def render_batch(self, row: sqlite3.Row) -> dict[str, Any]:
        query = f"SELECT {STATUS_SQL} AS status, COUNT(*) AS n FROM vector_store_files WHERE batch_id = :id GROUP BY 1"
        counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
        for item in self.db.connection().execute(query, {"now": self.clock.now(), "id": row["id"]}):
            counts[item["status"]] = item["n"]
        if row["cancelled_ts"] is not None:
            status = "cancelled"
        elif counts["in_progress"]:
            status = "in_progress"
        else:
            status = "completed"
        return {
            "id": row["id"],
            "object": "vector_store.files_batch",
            "created_at": row["created_at"],
            "vector_store_id": row["vector_store_id"],
            "status": status,
            "file_counts": {**counts, "total": sum(counts.values())},
        }

    def create_batch(self, store_id: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """``entries``: ``{"file_id", "attributes", "chunking_strategy"}`` each (validated by the router)."""
        self._usable_store(store_id)
        for entry in entries:
            self._file_source(entry["file_id"])
        batch_id = new_id("vsfb_")
        with self._lock:
            self._check_attach_rate(len(entries))
            with self.db.write() as db:
                db.execute(
                    "INSERT INTO vector_store_file_batches (id, vector_store_id, created_at) VALUES (?, ?, ?)",
                    (batch_id, store_id, int(self.clock.now())),
                )
            for entry in entries:
                self._attach(
                    store_id,
                    entry["file_id"],
                    attributes=entry.get("attributes"),
                    chunking=entry.get("chunking_strategy"),
                    batch_id=batch_id,
                )
        return self.render_batch(self._batch_row(store_id, batch_id))

    def get_batch(self, store_id: str, batch_id: str) -> dict[str, Any]:
        return self.render_batch(self._batch_row(store_id, batch_id))

    def cancel_batch(self, store_id: str, batch_id: str) -> dict[str, Any]:
        """Files still ``in_progress`` become ``cancelled``; finished ones stay. A finished batch is refused."""
        row = self._batch_row(store_id, batch_id)
        batch = self.render_batch(row)
        if batch["status"] != "in_progress":
            raise errors.vector_store_batch_not_cancellable(batch["status"])
        now = self.clock.now()
        with self.db.write() as db:
            db.execute(
                "UPDATE vector_store_files SET cancelled = 1 WHERE batch_id = ? AND ready_ts > ?", (batch_id, now)
            )
            db.execute("UPDATE vector_store_file_batches SET cancelled_ts = ? WHERE id = ?", (now, batch_id))
        return self.get_batch(store_id, batch_id)

    def list_batch_files(
        self,
        store_id: str,
        batch_id: str,
        *,
        limit: int,
        order: str,
        after: str | None,
        before: str | None,
        status: str | None,
    ) -> tuple[list[dict[str, Any]], bool]:
        self._batch_row(store_id, batch_id)
        return self.list_files(
            store_id, limit=limit, order=order, after=after, before=before, status=status, batch_id=batch_id
        )

    # ---- search -------------------------------------------------------------------------------------
    def search(
        self, store_id: str, queries: list[str], filters: dict[str, Any] | None, max_results: int
    ) -> list[dict[str, Any]]:
        self._usable_store(store_id)
        now = self.clock.now()
        rows = self.db.connection().execute(
            f"SELECT * FROM vector_store_files WHERE vector_store_id = :store AND {STATUS_SQL} = 'completed'",
            {"store": store_id, "now": now},
        )
        candidates = []
        for row in rows:
            attributes = json.loads(row["attributes"]) if row["attributes"] else {}
            if filters is not None and not search.matches(filters, attributes):
                continue
            candidates.append((row["file_id"], row["filename"], attributes, row["text"], row["chunk_size"]))
        self._touch(store_id)
        return search.rank(queries, candidates, max_results)

    # ---- admin / lifecycle ----------------------------------------------------------------------------
    def all_stores(self) -> list[dict[str, Any]]:
        rows = self.db.connection().execute("SELECT * FROM vector_stores ORDER BY seq").fetchall()
        return [self.render_store(row) for row in rows]

    def reset(self) -> None:
        with self._lock, self.db.write() as db:
            db.execute("DELETE FROM vector_store_files")
            db.execute("DELETE FROM vector_store_file_batches")
            db.execute("DELETE FROM vector_stores")
        self._attaches.clear()
