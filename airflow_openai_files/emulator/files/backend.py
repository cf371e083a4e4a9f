"""Files: metadata rows in SQLite, contents as plain files under ``data_dir/files``.

Rules kept here (the router only parses and renders): ids, expiry (``batch`` files after 30 days
by default), ``uploaded`` -> ``processed`` after ``processing_delay`` (Azure mode: ``pending`` ->
``running`` -> ``processed``), which purposes can be
downloaded, tombstones so a list cursor naming a deleted file keeps working, and (only with
``file_validation="status"``) the JSONL check that ends a malformed file in ``error``.
Content paths are built only from ids that match :data:`FILE_ID_RE`, never from input as is.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.db import new_id
from airflow_openai_files.emulator.core.state import Backend, EmulatorState
from airflow_openai_files.limits import (
    ALL_PURPOSES,
    BATCH_DEFAULT_EXPIRY_SECONDS,
    DOWNLOADABLE_PURPOSES,
    FILE_ID_PREFIX,
    FILE_ID_RE,
    JSONL_PURPOSES,
    UPLOAD_PURPOSES,
)
from airflow_openai_files.resources import batches, fine_tuning
from airflow_openai_files.validation import check_jsonl, describe

_COPY_CHUNK = 1024 * 1024
_PURGE_EVERY_SECONDS = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_ts REAL NOT NULL,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    expires_at INTEGER,
    check_state TEXT NOT NULL,
    status_details TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS files_order ON files (created_at, seq);
CREATE INDEX IF NOT EXISTS files_purpose_order ON files (purpose, created_at, seq);
CREATE INDEX IF NOT EXISTS files_expiry ON files (expires_at) WHERE expires_at IS NOT NULL AND deleted = 0;
"""


class FilesBackend(Backend):
    name = "files"
    SCHEMA = SCHEMA

    def __init__(self, state: EmulatorState) -> None:
        super().__init__(state)
        self.files_dir = self.db.data_dir / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self._checker: ThreadPoolExecutor | None = None
        self._last_purge = 0.0
        # Checks interrupted by a restart are run again.
        pending = "SELECT id FROM files WHERE check_state = 'pending' AND deleted = 0"
        for row in self.db.connection().execute(pending):
            self._submit_check(row["id"])

    # ---- rendering --------------------------------------------------------------------------------
    def _status(self, row: sqlite3.Row, now: float) -> tuple[str, str | None]:
        """
        OpenAI: ``uploaded`` for ``processing_delay`` seconds (and while a check runs), then ``processed``
        or ``error``. Azure: ``pending`` for the first half of the delay, ``running`` for the rest (and
        while a check runs), then ``processed`` or ``error``.
        """
        elapsed = now - row["created_ts"]
        delay = self.config.processing_delay
        if elapsed < delay or row["check_state"] == "pending":
            if not self.config.is_azure:
                return "uploaded", None
            return ("pending" if elapsed < delay / 2 else "running"), None
        if row["check_state"] == "error":
            return "error", row["status_details"]
        return "processed", None

    def _file_dict(self, row: sqlite3.Row, now: float) -> dict[str, Any]:
        status, details = self._status(row, now)
        result: dict[str, Any] = {
            "id": row["id"],
            "object": "file",
            "bytes": row["bytes"],
            "created_at": row["created_at"],
            "filename": row["filename"],
            "purpose": row["purpose"],
            "status": status,
        }
        # The spec types these two as non-nullable: they are left out rather than sent as null.
        if row["expires_at"] is not None:
            result["expires_at"] = row["expires_at"]
        if details is not None:
            result["status_details"] = details
        return result

    def render(self, file_id: str) -> dict[str, Any] | None:
        """The File as the API shows it, deleted or not (for Upload objects); None if unknown."""
        row = self.db.connection().execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        return self._file_dict(row, self.clock.now()) if row is not None else None

    # ---- creation ---------------------------------------------------------------------------------
    def add_file(
        self, tmp: Path, *, filename: str, purpose: str, nbytes: int, expires_after: int | None = None
    ) -> dict[str, Any]:
        """Move a fully received body into place and record it as a new File."""
        now = self.clock.now()
        created_at = int(now)
        if expires_after is None and purpose == batches.INPUT_PURPOSE:
            expires_after = BATCH_DEFAULT_EXPIRY_SECONDS
        expires_at = created_at + expires_after if expires_after is not None else None
        file_id = new_id(FILE_ID_PREFIX)
        check_state, details = "none", None
        if self.config.file_validation == "status" and purpose in JSONL_PURPOSES:
            if nbytes <= self.config.sync_check_bytes:
                check_state, details = self._check(tmp, purpose)
            else:
                check_state = "pending"
        os.replace(tmp, self.files_dir / file_id)
        with self.db.write() as db:
            db.execute(
                "INSERT INTO files (id, bytes, created_at, created_ts, filename, purpose, expires_at,"
                " check_state, status_details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (file_id, nbytes, created_at, now, filename, purpose, expires_at, check_state, details),
            )
            row = db.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        if check_state == "pending":
            self._submit_check(file_id)
        self._purge_expired()
        return self._file_dict(row, now)

    def create_service_file(self, purpose: str, filename: str, content: bytes | str | Path) -> dict[str, Any]:
        """A file the service itself creates (``batch_output``, ``fine-tune-results``, ...).

        ``content`` is the bytes, or a path whose bytes are copied (the source is left alone).
        For backends producing results and for tests seeding such files.
        """
        if purpose not in ALL_PURPOSES:
            raise errors.invalid_value("purpose", f"Unknown purpose {purpose!r}; expected one of {ALL_PURPOSES}.")
        tmp = self.db.tmp_path()
        try:
            if isinstance(content, (str, Path)):
                shutil.copyfile(content, tmp)
            else:
                tmp.write_bytes(content)
            return self.add_file(tmp, filename=filename, purpose=purpose, nbytes=tmp.stat().st_size)
        finally:
            tmp.unlink(missing_ok=True)

    # ---- rules shared with the Uploads API ----------------------------------------------------------
    @staticmethod
    def check_upload_purpose(purpose: Any) -> str:
        """A purpose a client may upload with; the service-created ones are refused like unknown ones."""
        if purpose is None:
            raise errors.missing_key_param("purpose")
        if purpose not in UPLOAD_PURPOSES:
            raise errors.bad_purpose(purpose)
        return str(purpose)

    def check_file_kind(self, purpose: str, filename: str, nbytes: int, param: str) -> None:
        """The ``.jsonl`` rule of fine-tune and batch files and the batch size cap."""
        api = {fine_tuning.TRAINING_PURPOSE: "Fine-Tuning", batches.INPUT_PURPOSE: "Batch"}.get(purpose)
        if api is not None and not filename.lower().endswith(".jsonl"):
            raise errors.wrong_file_format(api, param)
        if purpose == batches.INPUT_PURPOSE and nbytes > self.config.max_batch_bytes:
            raise errors.file_too_large(self.config.max_batch_bytes, "Batch", param)

    # ---- file-level validation (file_validation="status") -----------------------------------------
    @staticmethod
    def _check(path: Path, purpose: str) -> tuple[str, str | None]:
        with open(path, "rb", buffering=_COPY_CHUNK) as stream:
            problem = check_jsonl(stream, purpose)
        return ("ok", None) if problem is None else ("error", describe(problem))

    def _submit_check(self, file_id: str) -> None:
        if self._checker is None:
            self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emulator-check")
        self._checker.submit(self._background_check, file_id)

    def _background_check(self, file_id: str) -> None:
        try:
            row = self.db.connection().execute("SELECT purpose FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None or self.db.closed:
                return
            state, details = self._check(self.files_dir / file_id, row["purpose"])
            with self.db.write() as db:
                db.execute(
                    "UPDATE files SET check_state = ?, status_details = ? WHERE id = ?", (state, details, file_id)
                )
        except (OSError, sqlite3.Error):
            # Deleted meanwhile, or the store closed under a long check: the row stays 'pending'
            # and the check runs again at the next start on this data directory.
            return

    # ---- reading and deleting ---------------------------------------------------------------------
    def _live_row(self, file_id: str) -> sqlite3.Row:
        if not FILE_ID_RE.match(file_id):
            raise errors.no_such_file(file_id)
        row = self.db.connection().execute("SELECT * FROM files WHERE id = ? AND deleted = 0", (file_id,)).fetchone()
        if row is None or (row["expires_at"] is not None and row["expires_at"] <= self.clock.now()):
            raise errors.no_such_file(file_id)
        return row

    def get_file(self, file_id: str) -> dict[str, Any]:
        return self._file_dict(self._live_row(file_id), self.clock.now())

    def require_processed(self, file_id: str, param: str) -> dict[str, Any]:
        """
        The File a batch or fine-tuning job is about to use; in Azure mode it must be ``processed``.

        Azure OpenAI refuses a batch or job whose file is not processed yet (reported: openai-dotnet
        issue 312); OpenAI takes the file at once. Create handlers of such resources call this. Unknown
        file: 404 as :meth:`get_file`, naming ``param``.
        """
        try:
            file = self.get_file(file_id)
        except errors.EmulatorError:
            raise errors.no_such_file(file_id, param=param) from None
        if self.config.is_azure and file["status"] != "processed":
            raise errors.azure_file_not_processed(file_id, file["status"], param)
        return file

    def content_path(self, file_id: str) -> Path:
        """Where a live file's bytes are, whatever its purpose (admin and tests)."""
        self._live_row(file_id)
        return self.files_dir / file_id

    def download_path(self, file_id: str) -> Path:
        """``GET /files/{id}/content``: 404 for an unknown file, 400 for a purpose the service never serves."""
        row = self._live_row(file_id)
        if row["purpose"] not in DOWNLOADABLE_PURPOSES:
            raise errors.download_not_allowed(row["purpose"])
        return self.files_dir / file_id

    def delete_file(self, file_id: str) -> dict[str, Any]:
        with self.db.write() as db:
            self._live_row(file_id)
            # The row stays as a tombstone so that a list cursor naming it keeps working.
            db.execute("UPDATE files SET deleted = 1 WHERE id = ?", (file_id,))
        (self.files_dir / file_id).unlink(missing_ok=True)
        return {"id": file_id, "object": "file", "deleted": True}

    def list_files(
        self, *, purpose: str | None, limit: int | None, order: str, after: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page in ``created_at`` order (ties broken by insertion order); ``limit=None``: all."""
        now = self.clock.now()
        db = self.db.connection()
        clauses = ["deleted = 0", "(expires_at IS NULL OR expires_at > ?)"]
        params: list[Any] = [int(now)]
        if purpose is not None:
            clauses.append("purpose = ?")
            params.append(purpose)
        cmp, direction = (">", "ASC") if order == "asc" else ("<", "DESC")
        if after is not None:
            cursor = db.execute("SELECT created_at, seq FROM files WHERE id = ?", (after,)).fetchone()
            if cursor is None:
                raise errors.bad_cursor(after)
            clauses.append(f"(created_at, seq) {cmp} (?, ?)")
            params.extend([cursor["created_at"], cursor["seq"]])
        sql = (
            f"SELECT * FROM files WHERE {' AND '.join(clauses)}"
            f" ORDER BY created_at {direction}, seq {direction} LIMIT ?"
        )
        rows = db.execute(sql, [*params, -1 if limit is None else limit + 1]).fetchall()
        has_more = limit is not None and len(rows) > limit
        return [self._file_dict(row, now) for row in rows[:limit]], has_more

    def all_files(self) -> list[dict[str, Any]]:
        files, _ = self.list_files(purpose=None, limit=None, order="asc", after=None)
        return files

    def _purge_expired(self) -> None:
        now = self.clock.now()
        if now - self._last_purge < _PURGE_EVERY_SECONDS:
            return
        self._last_purge = now
        with self.db.write() as db:
            query = "SELECT id FROM files WHERE expires_at IS NOT NULL AND deleted = 0 AND expires_at <= ?"
            expired = [row["id"] for row in db.execute(query, (int(now),))]
            db.executemany("UPDATE files SET deleted = 1 WHERE id = ?", [(i,) for i in expired])
        for file_id in expired:
            (self.files_dir / file_id).unlink(missing_ok=True)

    # ---- lifecycle --------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.db.write() as db:
            db.execute("DELETE FROM files")
        shutil.rmtree(self.files_dir, ignore_errors=True)
        self.files_dir.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        if self._checker is not None:
            # A check of a multi-GiB file may run for long: do not wait for it (see _background_check).
            self._checker.shutdown(wait=False, cancel_futures=True)
