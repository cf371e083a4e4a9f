"""Emulator state: metadata in SQLite (WAL), file contents as plain files in the data directory.

Layout of ``data_dir``::

    emulator.sqlite3        metadata of files, uploads and parts
    files/<file id>         the content of each stored file
    parts/<upload id>/<part id>
    tmp/                    bodies being received (renamed into place once complete)

Content paths are built only from ids that match a strict pattern, never from user input as is.
All methods are thread-safe: each thread gets its own SQLite connection and every write runs under
one lock, so concurrent requests (run in the server's thread pool) never see ``database is locked``.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import sqlite3
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow_openai_files.validation import PURPOSES, check_jsonl, describe

FILE_ID_RE = re.compile(r"^file-[A-Za-z0-9]{1,64}$")
UPLOAD_ID_RE = re.compile(r"^upload_[A-Za-z0-9]{1,64}$")
PART_ID_RE = re.compile(r"^part_[A-Za-z0-9]{1,64}$")

CHECKED_PURPOSES = ("fine-tune", "batch")
BATCH_DEFAULT_EXPIRY_SECONDS = 30 * 24 * 3600
UPLOAD_LIFETIME_SECONDS = 3600
# Files up to this size are checked inside the request (so a small malformed file is already
# ``error`` in the create response); larger ones are checked by one background thread and stay
# ``uploaded`` until the check is done, as a big file does on the real service.
SYNC_CHECK_BYTES = 8 * 1024 * 1024
_COPY_CHUNK = 1024 * 1024

_ALNUM = string.ascii_letters + string.digits

_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    mime_type TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    file_expires_after INTEGER,
    status TEXT NOT NULL,
    file_id TEXT
);
CREATE TABLE IF NOT EXISTS parts (
    id TEXT PRIMARY KEY,
    upload_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS parts_upload ON parts (upload_id);
"""


class EmulatorError(Exception):
    """An API error: rendered as ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(24))


def no_such_file(file_id: str) -> EmulatorError:
    return EmulatorError(404, f"No such File object: {file_id[:200]}", param="id")


def no_such_upload(upload_id: str) -> EmulatorError:
    return EmulatorError(404, f"No such Upload object: {upload_id[:200]}", param="upload_id")


class Store:
    def __init__(
        self,
        data_dir: Path,
        *,
        processing_delay: float = 0.0,
        clock: Callable[[], float] = time.time,
        sync_check_bytes: int = SYNC_CHECK_BYTES,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.files_dir = self.data_dir / "files"
        self.parts_dir = self.data_dir / "parts"
        self.tmp_dir = self.data_dir / "tmp"
        for directory in (self.files_dir, self.parts_dir, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.processing_delay = processing_delay
        self.clock = clock
        self.clock_offset = 0.0
        self.sync_check_bytes = sync_check_bytes
        self._db_path = self.data_dir / "emulator.sqlite3"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._write_lock = threading.RLock()
        self._checker: ThreadPoolExecutor | None = None
        self._closed = False
        with self._write_lock:
            self._db().executescript(_SCHEMA)
        for stale in self.tmp_dir.iterdir():
            stale.unlink(missing_ok=True)
        # Checks interrupted by a restart are run again.
        for row in self._db().execute("SELECT id FROM files WHERE check_state = 'pending' AND deleted = 0"):
            self._submit_check(row["id"])

    # ---- plumbing -------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise sqlite3.ProgrammingError("the emulator store is closed")
            db = sqlite3.connect(self._db_path, timeout=30, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._write_lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        self._closed = True
        if self._checker is not None:
            # A check of a multi-GiB file may run for long: do not wait for it (see _background_check).
            self._checker.shutdown(wait=False, cancel_futures=True)
        with self._write_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    def now(self) -> float:
        return self.clock() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's idea of "now" forward (expiry and processing tests)."""
        self.clock_offset += seconds

    def tmp_path(self) -> Path:
        """A fresh path in the data directory for a body being received."""
        return self.tmp_dir / uuid.uuid4().hex

    def file_path(self, file_id: str) -> Path:
        if not FILE_ID_RE.match(file_id):
            raise no_such_file(file_id)
        return self.files_dir / file_id

    # ---- files ------------------------------------------------------------------------------------
    def _file_dict(self, row: sqlite3.Row, now: float) -> dict[str, Any]:
        status = "processed"
        details = None
        if now < row["created_ts"] + self.processing_delay or row["check_state"] == "pending":
            status = "uploaded"
        elif row["check_state"] == "error":
            status, details = "error", row["status_details"]
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

    def add_file(
        self,
        tmp: Path,
        *,
        filename: str,
        purpose: str,
        nbytes: int,
        expires_after: int | None = None,
    ) -> dict[str, Any]:
        """Move a fully received body into place and record it as a new File."""
        now = self.now()
        created_at = int(now)
        if expires_after is None and purpose == "batch":
            expires_after = BATCH_DEFAULT_EXPIRY_SECONDS
        expires_at = created_at + expires_after if expires_after is not None else None
        file_id = new_id("file-")
        check_state, details = "none", None
        if purpose in CHECKED_PURPOSES:
            if nbytes <= self.sync_check_bytes:
                check_state, details = self._check(tmp, purpose)
            else:
                check_state = "pending"
        os.replace(tmp, self.files_dir / file_id)
        with self._write() as db:
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
            row = self._db().execute("SELECT purpose FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None or self._closed:
                return
            state, details = self._check(self.files_dir / file_id, row["purpose"])
            with self._write() as db:
                db.execute(
                    "UPDATE files SET check_state = ?, status_details = ? WHERE id = ?",
                    (state, details, file_id),
                )
        except (OSError, sqlite3.Error):
            # Deleted meanwhile, or the store closed under a long check: the row stays 'pending'
            # and the check runs again at the next start on this data directory.
            return

    def _live_row(self, file_id: str) -> sqlite3.Row:
        if not FILE_ID_RE.match(file_id):
            raise no_such_file(file_id)
        row = self._db().execute("SELECT * FROM files WHERE id = ? AND deleted = 0", (file_id,)).fetchone()
        if row is None or (row["expires_at"] is not None and row["expires_at"] <= self.now()):
            raise no_such_file(file_id)
        return row

    def get_file(self, file_id: str) -> dict[str, Any]:
        return self._file_dict(self._live_row(file_id), self.now())

    def content_path(self, file_id: str) -> Path:
        self._live_row(file_id)
        return self.files_dir / file_id

    def delete_file(self, file_id: str) -> dict[str, Any]:
        with self._write() as db:
            self._live_row(file_id)
            # The row stays as a tombstone so that a list cursor naming it keeps working.
            db.execute("UPDATE files SET deleted = 1 WHERE id = ?", (file_id,))
        (self.files_dir / file_id).unlink(missing_ok=True)
        return {"id": file_id, "object": "file", "deleted": True}

    def list_files(
        self, *, purpose: str | None, limit: int | None, order: str, after: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page in ``created_at`` order (ties broken by insertion order); ``limit=None``: all."""
        now = self.now()
        db = self._db()
        clauses = ["deleted = 0", "(expires_at IS NULL OR expires_at > ?)"]
        params: list[Any] = [int(now)]
        if purpose is not None:
            clauses.append("purpose = ?")
            params.append(purpose)
        cmp, direction = (">", "ASC") if order == "asc" else ("<", "DESC")
        if after is not None:
            cursor = db.execute("SELECT created_at, seq FROM files WHERE id = ?", (after,)).fetchone()
            if cursor is None:
                raise EmulatorError(400, f"No such File object: {after[:200]}", param="after")
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

    _last_purge = 0.0

    def _purge_expired(self, force: bool = False) -> None:
        now = self.now()
        if not force and now - self._last_purge < 10:
            return
        self._last_purge = now
        with self._write() as db:
            expired = [
                row["id"]
                for row in db.execute(
                    "SELECT id FROM files WHERE expires_at IS NOT NULL AND deleted = 0 AND expires_at <= ?",
                    (int(now),),
                )
            ]
            db.executemany("UPDATE files SET deleted = 1 WHERE id = ?", [(i,) for i in expired])
        for file_id in expired:
            (self.files_dir / file_id).unlink(missing_ok=True)

    def reset(self) -> None:
        with self._write() as db:
            db.execute("DELETE FROM files")
            db.execute("DELETE FROM uploads")
            db.execute("DELETE FROM parts")
        for directory in (self.files_dir, self.parts_dir, self.tmp_dir):
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True, exist_ok=True)

    # ---- uploads ----------------------------------------------------------------------------------
    def _upload_dict(self, row: sqlite3.Row, now: float) -> dict[str, Any]:
        status = row["status"]
        if status == "completing":
            status = "pending"
        if status == "pending" and now >= row["expires_at"]:
            status = "expired"
        file: dict[str, Any] | None = None
        if row["file_id"] is not None:
            file_row = self._db().execute("SELECT * FROM files WHERE id = ?", (row["file_id"],)).fetchone()
            file = self._file_dict(file_row, now) if file_row is not None else None
        return {
            "id": row["id"],
            "object": "upload",
            "bytes": row["bytes"],
            "created_at": row["created_at"],
            "filename": row["filename"],
            "purpose": row["purpose"],
            "status": status,
            "expires_at": row["expires_at"],
            "file": file,
        }

    def create_upload(
        self, *, filename: str, purpose: str, nbytes: int, mime_type: str, expires_after: int | None
    ) -> dict[str, Any]:
        now = self.now()
        upload_id = new_id("upload_")
        with self._write() as db:
            db.execute(
                "INSERT INTO uploads (id, created_at, filename, purpose, bytes, mime_type, expires_at,"
                " file_expires_after, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                (
                    upload_id,
                    int(now),
                    filename,
                    purpose,
                    nbytes,
                    mime_type,
                    int(now) + UPLOAD_LIFETIME_SECONDS,
                    expires_after,
                ),
            )
            row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        return self._upload_dict(row, now)

    def _pending_upload(self, db: sqlite3.Connection, upload_id: str, action: str) -> sqlite3.Row:
        if not UPLOAD_ID_RE.match(upload_id):
            raise no_such_upload(upload_id)
        row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        if row is None:
            raise no_such_upload(upload_id)
        status = self._upload_dict(row, self.now())["status"]
        if row["status"] != "pending" or status != "pending":
            raise EmulatorError(400, f"Cannot {action} an Upload with status '{status}'.", param="upload_id")
        return row

    def require_pending_upload(self, upload_id: str, action: str = "add parts to") -> None:
        self._pending_upload(self._db(), upload_id, action)

    def add_part(self, upload_id: str, tmp: Path, nbytes: int) -> dict[str, Any]:
        part_id = new_id("part_")
        now = self.now()
        with self._write() as db:
            self._pending_upload(db, upload_id, "add parts to")
            directory = self.parts_dir / upload_id
            directory.mkdir(exist_ok=True)
            os.replace(tmp, directory / part_id)
            db.execute(
                "INSERT INTO parts (id, upload_id, created_at, bytes) VALUES (?, ?, ?, ?)",
                (part_id, upload_id, int(now), nbytes),
            )
        return {"id": part_id, "object": "upload.part", "created_at": int(now), "upload_id": upload_id}

    def complete_upload(self, upload_id: str, part_ids: list[str], md5: str | None) -> dict[str, Any]:
        with self._write() as db:
            upload = self._pending_upload(db, upload_id, "complete")
            if len(set(part_ids)) != len(part_ids):
                raise EmulatorError(400, "Duplicate part ids in 'part_ids'.", param="part_ids")
            sizes: list[int] = []
            for part_id in part_ids:
                row = db.execute(
                    "SELECT bytes FROM parts WHERE id = ? AND upload_id = ?", (part_id, upload_id)
                ).fetchone()
                if row is None:
                    raise EmulatorError(
                        400, f"Part {part_id[:200]} does not belong to Upload {upload_id}.", param="part_ids"
                    )
                sizes.append(row["bytes"])
            if sum(sizes) != upload["bytes"]:
                raise EmulatorError(
                    400,
                    f"The number of bytes uploaded ({sum(sizes)}) does not match the number of bytes"
                    f" specified when creating the Upload ({upload['bytes']}).",
                    param="part_ids",
                )
            # 'completing' refuses new parts and a second completion while the parts are joined.
            db.execute("UPDATE uploads SET status = 'completing' WHERE id = ?", (upload_id,))
        tmp = self.tmp_path()
        try:
            digest = self._join_parts(upload_id, part_ids, tmp, want_md5=md5 is not None)
            if md5 is not None and digest != md5.lower():
                raise EmulatorError(
                    400,
                    f"The md5 checksum of the uploaded bytes ({digest}) does not match the md5 given ({md5}).",
                    param="md5",
                )
            file = self.add_file(
                tmp,
                filename=upload["filename"],
                purpose=upload["purpose"],
                nbytes=upload["bytes"],
                expires_after=upload["file_expires_after"],
            )
        except BaseException:
            tmp.unlink(missing_ok=True)
            with self._write() as db:
                db.execute("UPDATE uploads SET status = 'pending' WHERE id = ?", (upload_id,))
            raise
        with self._write() as db:
            db.execute("UPDATE uploads SET status = 'completed', file_id = ? WHERE id = ?", (file["id"], upload_id))
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        shutil.rmtree(self.parts_dir / upload_id, ignore_errors=True)
        return self._upload_dict(row, self.now())

    def _join_parts(self, upload_id: str, part_ids: list[str], target: Path, *, want_md5: bool) -> str | None:
        digest = hashlib.md5(usedforsecurity=False) if want_md5 else None
        directory = self.parts_dir / upload_id
        with open(target, "wb") as out:
            for part_id in part_ids:
                with open(directory / part_id, "rb") as src:
                    if digest is None:
                        shutil.copyfileobj(src, out, _COPY_CHUNK)
                        continue
                    while chunk := src.read(_COPY_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        return digest.hexdigest() if digest is not None else None

    def cancel_upload(self, upload_id: str) -> dict[str, Any]:
        with self._write() as db:
            self._pending_upload(db, upload_id, "cancel")
            db.execute("UPDATE uploads SET status = 'cancelled' WHERE id = ?", (upload_id,))
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        shutil.rmtree(self.parts_dir / upload_id, ignore_errors=True)
        return self._upload_dict(row, self.now())


__all__ = ["PURPOSES", "EmulatorError", "Store"]
