"""Uploads: an Upload row, its parts as files under ``data_dir/parts/<upload id>/``, and the File
made by joining them on completion (through the files backend, so every File rule applies)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.db import new_id
from airflow_openai_files.emulator.core.state import Backend, EmulatorState
from airflow_openai_files.emulator.files.backend import FilesBackend
from airflow_openai_files.limits import (
    PART_ID_PREFIX,
    UPLOAD_ID_PREFIX,
    UPLOAD_ID_RE,
    UPLOAD_LIFETIME_SECONDS,
    VISION_MIME_TYPES,
)
from airflow_openai_files.resources.batches import INPUT_PURPOSE

_COPY_CHUNK = 1024 * 1024
#: Purposes whose Upload must declare one of these MIME types (the API reference: "This must fall
#: within the supported MIME types for your file purpose").
MIME_TYPES_BY_PURPOSE: dict[str, tuple[str, ...]] = {"vision": VISION_MIME_TYPES}

SCHEMA = """
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


class UploadsBackend(Backend):
    name = "uploads"
    SCHEMA = SCHEMA

    def __init__(self, state: EmulatorState) -> None:
        super().__init__(state)
        self.files: FilesBackend = state.backend("files")
        self.parts_dir = self.db.data_dir / "parts"
        self.parts_dir.mkdir(parents=True, exist_ok=True)

    def _upload_dict(self, row: sqlite3.Row, now: float) -> dict[str, Any]:
        status = row["status"]
        if status == "completing":
            status = "pending"
        if status == "pending" and now >= row["expires_at"]:
            status = "expired"
        return {
            "id": row["id"],
            "object": "upload",
            "bytes": row["bytes"],
            "created_at": row["created_at"],
            "filename": row["filename"],
            "purpose": row["purpose"],
            "status": status,
            "expires_at": row["expires_at"],
            "file": self.files.render(row["file_id"]) if row["file_id"] is not None else None,
        }

    def all_uploads(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        rows = self.db.connection().execute("SELECT * FROM uploads ORDER BY created_at, rowid").fetchall()
        return [self._upload_dict(row, now) for row in rows]

    def create_upload(
        self, *, filename: str, purpose: Any, nbytes: int, mime_type: str, expires_after: int | None
    ) -> dict[str, Any]:
        purpose = self.files.check_upload_purpose(purpose)
        if not 0 <= nbytes <= self.config.max_upload_bytes:
            raise errors.upload_bytes_out_of_range(self.config.max_upload_bytes)
        self.files.check_file_kind(purpose, filename, nbytes, "bytes" if purpose == INPUT_PURPOSE else "filename")
        supported = MIME_TYPES_BY_PURPOSE.get(purpose)
        if supported is not None and mime_type.split(";", 1)[0].strip().lower() not in supported:
            raise errors.bad_mime_type(mime_type, purpose, supported)
        now = self.clock.now()
        upload_id = new_id(UPLOAD_ID_PREFIX)
        with self.db.write() as db:
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
            raise errors.no_such_upload(upload_id)
        row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        if row is None:
            raise errors.no_such_upload(upload_id)
        status = self._upload_dict(row, self.clock.now())["status"]
        if row["status"] != "pending" or status != "pending":
            raise errors.upload_not_pending(action, status)
        return row

    def require_pending_upload(self, upload_id: str, action: str = "add parts to") -> None:
        self._pending_upload(self.db.connection(), upload_id, action)

    def add_part(self, upload_id: str, tmp: Path, nbytes: int) -> dict[str, Any]:
        part_id = new_id(PART_ID_PREFIX)
        now = self.clock.now()
        with self.db.write() as db:
            self._pending_upload(db, upload_id, "add parts to")
            directory = self.parts_dir / upload_id
            directory.mkdir(exist_ok=True)
            os.replace(tmp, directory / part_id)
            db.execute(
                "INSERT INTO parts (id, upload_id, created_at, bytes) VALUES (?, ?, ?, ?)",
                (part_id, upload_id, int(now), nbytes),
            )
        return {"id": part_id, "object": "upload.part", "created_at": int(now), "upload_id": upload_id}

    def _check_parts(self, db: sqlite3.Connection, upload: sqlite3.Row, part_ids: list[str]) -> None:
        if len(set(part_ids)) != len(part_ids):
            raise errors.parts_mismatch("Duplicate part ids in 'part_ids'.")
        total = 0
        for part_id in part_ids:
            query = "SELECT bytes FROM parts WHERE id = ? AND upload_id = ?"
            row = db.execute(query, (part_id, upload["id"])).fetchone()
            if row is None:
                raise errors.parts_mismatch(f"Part {part_id[:200]} does not belong to Upload {upload['id']}.")
            total += row["bytes"]
        if total != upload["bytes"]:
            raise errors.parts_mismatch(
                f"The number of bytes uploaded ({total}) does not match the number of bytes"
                f" specified when creating the Upload ({upload['bytes']})."
            )

    def complete_upload(self, upload_id: str, part_ids: list[str], md5: str | None) -> dict[str, Any]:
        with self.db.write() as db:
            upload = self._pending_upload(db, upload_id, "complete")
            self._check_parts(db, upload, part_ids)
            # 'completing' refuses new parts and a second completion while the parts are joined.
            db.execute("UPDATE uploads SET status = 'completing' WHERE id = ?", (upload_id,))
        tmp = self.db.tmp_path()
        try:
            digest = self._join_parts(upload_id, part_ids, tmp, want_md5=md5 is not None)
            if md5 is not None and digest != md5.lower():
                raise errors.parts_mismatch(
                    f"The md5 checksum of the uploaded bytes ({digest}) does not match the md5 given ({md5}).", "md5"
                )
            file = self.files.add_file(
                tmp,
                filename=upload["filename"],
                purpose=upload["purpose"],
                nbytes=upload["bytes"],
                expires_after=upload["file_expires_after"],
            )
        except BaseException:
            tmp.unlink(missing_ok=True)
            with self.db.write() as db:
                db.execute("UPDATE uploads SET status = 'pending' WHERE id = ?", (upload_id,))
            raise
        with self.db.write() as db:
            db.execute("UPDATE uploads SET status = 'completed', file_id = ? WHERE id = ?", (file["id"], upload_id))
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        shutil.rmtree(self.parts_dir / upload_id, ignore_errors=True)
        return self._upload_dict(row, self.clock.now())

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
        with self.db.write() as db:
            self._pending_upload(db, upload_id, "cancel")
            db.execute("UPDATE uploads SET status = 'cancelled' WHERE id = ?", (upload_id,))
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        shutil.rmtree(self.parts_dir / upload_id, ignore_errors=True)
        return self._upload_dict(row, self.clock.now())

    def reset(self) -> None:
        with self.db.write() as db:
            db.execute("DELETE FROM uploads")
            db.execute("DELETE FROM parts")
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
