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
from typing import Any

from airflow_openai_files.emulator.core.db import new_id
from airflow_openai_files.emulator.core.state import Backend, EmulatorState
from airflow_openai_files.emulator.vector_stores import errors, search
from airflow_openai_files.emulator.vector_stores.batches import FileBatchesMixin
from airflow_openai_files.emulator.vector_stores.objects import (
    SCHEMA,
    STATUS_SQL,
    TEXT_MAX_BYTES,
    UPSERT_FILE_SQL,
    AttachRate,
    expired,
    inspect_content,
    page,
    render_file,
    render_store,
)
from airflow_openai_files.limits import (
    CHUNK_OVERLAP_DEFAULT,
    CHUNK_SIZE_DEFAULT,
    FILE_ID_RE,
    VECTOR_STORE_ID_RE,
)


class VectorStoresBackend(FileBatchesMixin, Backend):
    name = "vector_stores"
    SCHEMA = SCHEMA

    def __init__(self, state: EmulatorState) -> None:
        super().__init__(state)
        self.files = state.backend("files")
        self._lock = threading.RLock()
        self._attaches = AttachRate()

    # ---- stores -----------------------------------------------------------------------------------
    def _store_row(self, store_id: str) -> sqlite3.Row:
        row = None
        if VECTOR_STORE_ID_RE.match(store_id):
            row = self.db.connection().execute("SELECT * FROM vector_stores WHERE id = ?", (store_id,)).fetchone()
        if row is None:
            raise errors.no_such_vector_store(store_id)
        return row

    def _expired(self, row: sqlite3.Row, now: float) -> bool:
        return expired(row, now)

    def _usable_store(self, store_id: str) -> sqlite3.Row:
        row = self._store_row(store_id)
        if self._expired(row, self.clock.now()):
            raise errors.vector_store_expired(store_id)
        return row

    def _touch(self, store_id: str) -> None:
        with self.db.write() as db:
            db.execute("UPDATE vector_stores SET last_active_ts = ? WHERE id = ?", (self.clock.now(), store_id))

    def render_store(self, row: sqlite3.Row) -> dict[str, Any]:
        return render_store(self.db.connection(), row, self.clock.now())

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
        rows, has_more = page(
            self.db.connection(), "vector_stores", "1 = 1", {}, limit, order, after, before, "vector store"
        )
        return [self.render_store(row) for row in rows], has_more

    # ---- paging (shared) ----------------------------------------------------------------------------
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
        if limit is not None and not self._attaches.take(count, limit):
            raise errors.vector_store_attach_rate(limit)

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
        outcome, code, message, text = inspect_content(file["filename"], content)
        static = (chunking or {}).get("static") or {}
        now = self.clock.now()
        with self.db.write() as db:
            db.execute(
                UPSERT_FILE_SQL,
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
        return render_file(row, self.clock.now() if now is None else now)

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
        rows, has_more = page(
            self.db.connection(),
            "vector_store_files",
            where,
            params,
            limit,
            order,
            after,
            before,
            "vector store file",
            "file_id",
        )
        return [self.render_file(row, now) for row in rows], has_more

    # ---- search -------------------------------------------------------------------------------------
    def search(
        self, store_id: str, queries: list[str], filters: dict[str, Any] | None, max_results: int
    ) -> list[dict[str, Any]]:
        self._usable_store(store_id)
        now = self.clock.now()
        found = search.search(self.db.connection(), store_id, queries, filters, max_results, now)
        self._touch(store_id)
        return found

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
