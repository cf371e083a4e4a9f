"""Batches: rows in SQLite, a working folder per batch under ``data_dir/batches/<id>``, and the
lifecycle on the emulator's clock.

Lazy and deterministic: no thread runs batches. Every call into this backend first brings each
unfinished batch up to the clock's ``now`` (:meth:`BatchesBackend._tick`): a state change happens
at a time computed from the configured durations, so a test that moves the clock
(``advance_clock``) sees exactly the states and timestamps the schedule says, and a batch that reads
``completed`` already has its output and error files (purpose ``batch_output``, listed in
``/v1/files``).

Schedule (config fields ``batch_*_seconds``): ``validating`` for ``validating``; then
``in_progress`` for ``in_progress + seconds_per_request * total``, line *i* being answered at
``in_progress_at + duration * (i + 1) / total``; then ``finalizing``; then ``completed``. The
completion window (24 h) ends it ``expired`` (answered lines delivered, the rest ``batch_expired``
errors); a cancel makes it ``cancelling`` for ``cancelling`` seconds then ``cancelled`` (the rest
``batch_cancelled`` errors).

Lines are answered in steps (:mod:`.lines`), so memory stays bounded for 50,000 lines; the Batch
object and its table are in :mod:`.objects`, the stand-in model in :mod:`.model`, the validation in
:mod:`.inputcheck`.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from typing import Any

from airflow_openai_files.emulator.batches.inputcheck import check_input
from airflow_openai_files.emulator.batches.line_faults import LineFaults
from airflow_openai_files.emulator.batches.lines import ERRORS_NAME, OUTPUT_NAME, write_lines
from airflow_openai_files.emulator.batches.objects import SCHEMA, render_batch
from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.db import new_id
from airflow_openai_files.emulator.core.state import Backend, EmulatorState
from airflow_openai_files.limits import BATCH_COMPLETION_WINDOW_SECONDS, BATCH_ID_RE
from airflow_openai_files.resources.batches import ACTIVE, CANCELLABLE, ID_PREFIX, INPUT_PURPOSE, OUTPUT_PURPOSE

ORGANIZATION = "org-emulator"


class BatchesBackend(Backend):
    name = "batches"
    SCHEMA = SCHEMA

    def __init__(self, state: EmulatorState) -> None:
        super().__init__(state)
        self.files = state.backend("files")
        self.work_dir = self.db.data_dir / "batches"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.line_faults = LineFaults()

    # ---- rows -------------------------------------------------------------------------------------
    def _row(self, batch_id: str) -> sqlite3.Row:
        row = None
        if BATCH_ID_RE.match(batch_id):
            row = self.db.connection().execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise errors.no_such_batch(batch_id)
        return row

    def _update(self, batch_id: str, **values: Any) -> sqlite3.Row:
        columns = ", ".join(f"{name} = ?" for name in values)
        with self.db.write() as db:
            db.execute(f"UPDATE batches SET {columns} WHERE id = ?", (*values.values(), batch_id))
            row: sqlite3.Row = db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return row

    # ---- public operations ------------------------------------------------------------------------
    def create_batch(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
        output_expires_after: int | None,
    ) -> dict[str, Any]:
        """A new batch in ``validating``; the input file must be a live file of purpose ``batch``."""
        try:
            source = self.files.content_path(input_file_id)
        except errors.EmulatorError:
            raise errors.no_such_file(input_file_id, param="input_file_id") from None
        purpose = self.files.require_processed(input_file_id, "input_file_id")["purpose"]
        if purpose != INPUT_PURPOSE:
            raise errors.batch_input_not_batch_purpose(input_file_id, purpose)
        batch_id = new_id(ID_PREFIX)
        folder = self.work_dir / batch_id
        folder.mkdir(parents=True)
        # A hard link keeps the input readable if the file is deleted while the batch runs.
        try:
            os.link(source, folder / "input.jsonl")
        except OSError:
            shutil.copyfile(source, folder / "input.jsonl")
        with self._lock, self.db.write() as db:
            db.execute(
                "INSERT INTO batches (id, created_ts, endpoint, input_file_id, completion_window, metadata,"
                " output_expires_after, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'validating')",
                (
                    batch_id,
                    self.clock.now(),
                    endpoint,
                    input_file_id,
                    completion_window,
                    json.dumps(metadata) if metadata is not None else None,
                    output_expires_after,
                ),
            )
            row = db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return render_batch(row)

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            self._tick()
            return render_batch(self._row(batch_id))

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            self._tick()
            row = self._row(batch_id)
            status = row["status"]
            if status == "cancelling":
                return render_batch(row)
            if status not in CANCELLABLE:
                raise errors.batch_not_cancellable(status)
            now = self.clock.now()
            if status == "in_progress":
                row = self._answer_until(row, now)
            row = self._update(batch_id, status="cancelling", cancelling_ts=now)
            return render_batch(row)

    def list_batches(self, *, limit: int | None, after: str | None) -> tuple[list[dict[str, Any]], bool]:
        """Newest first; ``limit=None``: all."""
        with self._lock:
            self._tick()
            db = self.db.connection()
            clauses, params = "", []
            if after is not None:
                cursor = db.execute("SELECT seq FROM batches WHERE id = ?", (after,)).fetchone()
                if cursor is None:
                    raise errors.bad_batch_cursor(after)
                clauses, params = "WHERE seq < ?", [cursor["seq"]]
            rows = db.execute(
                f"SELECT * FROM batches {clauses} ORDER BY seq DESC LIMIT ?",
                [*params, -1 if limit is None else limit + 1],
            ).fetchall()
        has_more = limit is not None and len(rows) > limit
        return [render_batch(row) for row in rows[:limit]], has_more

    def all_batches(self) -> list[dict[str, Any]]:
        """Every batch, oldest first (the public accessor ``batches()``)."""
        batches, _ = self.list_batches(limit=None, after=None)
        return batches[::-1]

    # ---- the lifecycle ----------------------------------------------------------------------------
    def _tick(self) -> None:
        """Bring every unfinished batch up to ``now``, oldest first."""
        now = self.clock.now()
        marks = ", ".join("?" for _ in ACTIVE)
        query = f"SELECT * FROM batches WHERE status IN ({marks}) ORDER BY seq"
        for row in self.db.connection().execute(query, ACTIVE).fetchall():
            self._advance(row, now)

    def _advance(self, row: sqlite3.Row, now: float) -> None:
        cfg = self.config
        while True:
            status = row["status"]
            if status == "validating":
                at = row["created_ts"] + cfg.batch_validating_seconds
                if now < at:
                    return
                row = self._validate(row, at)
            elif status == "in_progress":
                end = row["in_progress_ts"] + row["duration"]
                expires = row["created_ts"] + BATCH_COMPLETION_WINDOW_SECONDS[row["completion_window"]]
                row = self._answer_until(row, min(now, end, expires))
                if end > expires and now >= expires:
                    row = self._finish(row, "expired", expires, "batch_expired")
                elif now >= end:
                    row = self._update(row["id"], status="finalizing", finalizing_ts=end)
                else:
                    return
            elif status == "finalizing":
                at = row["finalizing_ts"] + cfg.batch_finalizing_seconds
                if now < at:
                    return
                row = self._finish(row, "completed", at, None)
            elif status == "cancelling":
                at = row["cancelling_ts"] + cfg.batch_cancelling_seconds
                if now < at:
                    return
                row = self._finish(row, "cancelled", at, "batch_cancelled")
            else:
                return

    def _validate(self, row: sqlite3.Row, at: float) -> sqlite3.Row:
        check = check_input(self.work_dir / row["id"] / "input.jsonl", row["endpoint"], azure=self.config.is_azure)
        if not check.errors:
            limit = self.config.enqueued_token_limit
            if limit is not None and check.model is not None:
                query = (
                    "SELECT COALESCE(SUM(enqueued_tokens), 0) FROM batches"
                    " WHERE model = ? AND status IN ('in_progress', 'finalizing') AND id != ?"
                )
                queued = self.db.connection().execute(query, (check.model, row["id"])).fetchone()[0]
                if queued + check.tokens > limit:
                    check.add(
                        "token_limit_exceeded",
                        f"Enqueued token limit reached for {check.model} in organization {ORGANIZATION}."
                        f" Limit: {limit:,} enqueued tokens. Please try again once some in_progress batches"
                        " have been completed.",
                    )
        if check.errors:
            shutil.rmtree(self.work_dir / row["id"], ignore_errors=True)
            return self._update(
                row["id"],
                status="failed",
                ended_ts=at,
                model=check.model,
                errors=json.dumps({"object": "list", "data": check.errors}),
            )
        duration = self.config.batch_in_progress_seconds + self.config.batch_seconds_per_request * check.total
        return self._update(
            row["id"],
            status="in_progress",
            in_progress_ts=at,
            duration=duration,
            total=check.total,
            model=check.model,
            enqueued_tokens=check.tokens,
        )

    def _due(self, row: sqlite3.Row, until: float) -> int:
        """How many lines are answered by ``until`` on the batch's schedule."""
        total, duration = row["total"], row["duration"]
        if duration <= 0 or until >= row["in_progress_ts"] + duration:
            return int(total)
        share = (until - row["in_progress_ts"]) / duration
        return max(0, min(total, int(share * total + 1e-9)))

    def _answer_until(self, row: sqlite3.Row, until: float) -> sqlite3.Row:
        target = self._due(row, until)
        if target <= row["done"]:
            return row
        return self._write(row, target - row["done"], None)

    def _write(self, row: sqlite3.Row, count: int | None, rest_code: str | None) -> sqlite3.Row:
        folder = self.work_dir / row["id"]
        return self._update(row["id"], **write_lines(folder, row, count, rest_code, self.line_faults.answer))

    def _finish(self, row: sqlite3.Row, status: str, at: float, rest_code: str | None) -> sqlite3.Row:
        """End a batch: answer what is left (or fail it with ``rest_code``), then publish the files."""
        if row["in_progress_ts"] is not None:  # cancelled while validating: no line was ever read
            row = self._write(row, None, rest_code)
        folder = self.work_dir / row["id"]
        ids: dict[str, str | None] = {}
        for key, name, size, label in (
            ("output_file_id", OUTPUT_NAME, row["out_bytes"], "output"),
            ("error_file_id", ERRORS_NAME, row["err_bytes"], "error"),
        ):
            ids[key] = None
            if size:
                created = self.files.add_file(
                    folder / name,
                    filename=f"{row['id']}_{label}.jsonl",
                    purpose=OUTPUT_PURPOSE,
                    nbytes=size,
                    expires_after=row["output_expires_after"],
                )
                ids[key] = created["id"]
        row = self._update(row["id"], status=status, ended_ts=at, **ids)
        shutil.rmtree(folder, ignore_errors=True)
        return row

    # ---- lifecycle --------------------------------------------------------------------------------
    def reset(self) -> None:
        self.line_faults.clear()
        with self._lock, self.db.write() as db:
            db.execute("DELETE FROM batches")
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)


def expire_batch(backend: BatchesBackend, batch_id: str) -> dict[str, Any]:
    """Admin API: end a running batch now as ``expired`` (answered lines delivered, the rest ``batch_expired``)."""
    with backend._lock:
        backend._tick()
        row = backend._row(batch_id)
        if row["status"] not in CANCELLABLE:
            raise errors.bad_admin_request(f"batch {batch_id} is {row['status']}; only a running batch can expire")
        now = backend.clock.now()
        row = backend._validate(row, now) if row["status"] == "validating" else row
        row = backend._answer_until(row, now) if row["status"] == "in_progress" else row
        return render_batch(row if row["status"] == "failed" else backend._finish(row, "expired", now, "batch_expired"))
