"""File batches of a vector store: many files attached at once, counted and cancelled together."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from airflow_openai_files.emulator.core.db import new_id
from airflow_openai_files.emulator.vector_stores import errors
from airflow_openai_files.emulator.vector_stores.objects import status_counts
from airflow_openai_files.limits import VECTOR_STORE_FILE_BATCH_ID_RE


class FileBatchesMixin:
    """``create_batch``, ``get_batch``, ``cancel_batch`` and ``list_batch_files`` of the backend."""

    if TYPE_CHECKING:
        from threading import RLock

        from airflow_openai_files.emulator.core.db import Clock, Database

        db: Database
        clock: Clock
        _lock: RLock

        def _store_row(self, store_id: str) -> sqlite3.Row: ...
        def _usable_store(self, store_id: str) -> sqlite3.Row: ...
        def _file_source(self, file_id: str) -> tuple[dict[str, Any], Any]: ...
        def _check_attach_rate(self, count: int) -> None: ...
        def _attach(
            self,
            store_id: str,
            file_id: str,
            *,
            attributes: dict[str, Any] | None,
            chunking: dict[str, Any] | None,
            batch_id: str | None,
        ) -> None: ...
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
        ) -> tuple[list[dict[str, Any]], bool]: ...

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
        counts = status_counts(self.db.connection(), "batch_id", row["id"], self.clock.now())
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
