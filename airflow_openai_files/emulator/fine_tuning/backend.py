"""Fine-tuning jobs: rows in SQLite, a lifecycle on the emulator's clock, events and checkpoints.

Lifecycle, evaluated lazily and deterministically whenever a job is read (no threads): a job is
``validating_files`` for ``fine_tuning_validate_seconds`` after creation; then its files' content
is checked (:mod:`.content`) and it either fails with the service's error shape or is ``queued``
for ``fine_tuning_queue_seconds``, ``running`` for ``fine_tuning_train_seconds`` (metric events
appear as their step's time passes) and ``succeeded`` with a ``fine-tune-results`` file, a model
name ``ft:<base>:<org>:<suffix>:<id>`` and ``trained_tokens``. Every transition is stamped with
the time it was due, not the time it was noticed, so moving the clock by an hour gives the same
job as waiting an hour. Transitions run under one lock, so two readers never both finish a job; the
rows a transition writes and the step arithmetic are in :mod:`.lifecycle`.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from typing import Any

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.db import new_id
from airflow_openai_files.emulator.core.state import Backend
from airflow_openai_files.emulator.fine_tuning import content, lifecycle, render
from airflow_openai_files.limits import FINE_TUNING_JOB_ID_RE
from airflow_openai_files.resources.fine_tuning import ID_PREFIX, RESULTS_PURPOSE, TERMINAL, TRAINING_PURPOSE

SCHEMA = """
CREATE TABLE IF NOT EXISTS fine_tuning_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    created_ts REAL NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    plan TEXT,
    queued_ts REAL,
    started_ts REAL,
    finished_ts REAL,
    paused_ts REAL,
    steps_done INTEGER NOT NULL DEFAULT 0,
    fine_tuned_model TEXT,
    result_file TEXT
);
CREATE TABLE IF NOT EXISTS fine_tuning_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT,
    type TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fine_tuning_events_job ON fine_tuning_events (job_id, seq);
CREATE TABLE IF NOT EXISTS fine_tuning_checkpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    step_number INTEGER NOT NULL,
    model TEXT NOT NULL,
    metrics TEXT NOT NULL
);
"""


class FineTuningBackend(Backend):
    name = "fine_tuning"
    SCHEMA = SCHEMA

    def __init__(self, state: Any) -> None:
        super().__init__(state)
        self._lock = threading.RLock()

    # ---- creation ---------------------------------------------------------------------------------
    def _check_file(self, file_id: str, param: str) -> None:
        files = self.state.backend("files")
        try:
            file = files.get_file(file_id)
        except errors.EmulatorError:
            raise errors.invalid_fine_tuning_file(param, file_id) from None
        if file["purpose"] != TRAINING_PURPOSE:
            raise errors.wrong_fine_tuning_file_purpose(param, file_id, file["purpose"])
        files.require_processed(file_id, param)  # Azure OpenAI refuses a file not yet processed

    def create_job(self, request: dict[str, Any]) -> dict[str, Any]:
        """A new job in ``validating_files`` (``request`` comes from :func:`.params.parse_create`)."""
        now = self.clock.now()
        if self.config.fine_tuning_closed(now):
            raise errors.fine_tuning_unavailable(str(self.config.fine_tuning_available_until))
        self._check_file(request["training_file"], "training_file")
        if request["validation_file"] is not None:
            self._check_file(request["validation_file"], "validation_file")
        if request["seed"] is None:
            request = {**request, "seed": secrets.randbelow(2_147_483_647)}
        job_id = new_id(ID_PREFIX)
        with self.db.write() as db:
            db.execute(
                "INSERT INTO fine_tuning_jobs (id, created_at, created_ts, request, status) VALUES (?, ?, ?, ?, ?)",
                (job_id, int(now), now, json.dumps(request), "validating_files"),
            )
            lifecycle.record_event(db, job_id, now, f"Created fine-tuning job: {job_id}")
            files = f"Validating training file: {request['training_file']}"
            if request["validation_file"]:
                files += f" and validation file: {request['validation_file']}"
            lifecycle.record_event(db, job_id, now, files)
        return self.get_job(job_id)

    # ---- the lifecycle ------------------------------------------------------------------------------
    def _row(self, job_id: str) -> sqlite3.Row:
        if not FINE_TUNING_JOB_ID_RE.match(job_id):
            raise errors.no_such_fine_tuning_job(job_id)
        row = self.db.connection().execute("SELECT * FROM fine_tuning_jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise errors.no_such_fine_tuning_job(job_id)
        return row

    def _advance(self, job_id: str) -> sqlite3.Row:
        """Apply every transition that is due by now; return the current row."""
        config = self.config
        with self._lock:
            while True:
                row = self._row(job_id)
                now = self.clock.now()
                status = row["status"]
                if status == "validating_files":
                    due = row["created_ts"] + config.fine_tuning_validate_seconds
                    if now < due:
                        return row
                    self._validate(row, due)
                elif status == "queued":
                    due = row["queued_ts"] + config.fine_tuning_queue_seconds
                    if now < due:
                        return row
                    with self.db.write() as db:
                        db.execute(
                            "UPDATE fine_tuning_jobs SET status = 'running', started_ts = ? WHERE id = ?", (due, job_id)
                        )
                        lifecycle.record_event(db, job_id, due, "Fine-tuning job started")
                elif status != "running" or not self._train(row, now):
                    return row

    def _validate(self, row: sqlite3.Row, at: float) -> None:
        request = json.loads(row["request"])
        method = request["method"]["type"]
        files = self.state.backend("files")
        checked: dict[str, content.FileStats] = {}
        problem: content.FileProblem | None = None
        for param in ("training_file", "validation_file"):
            file_id = request[param]
            if file_id is None:
                continue
            try:
                path = files.content_path(file_id)
            except errors.EmulatorError:
                path = files.files_dir / "missing"
            result = content.check_file(path, method, param)
            if isinstance(result, content.FileProblem):
                problem = result
                break
            checked[param] = result
        with self.db.write() as db:
            if problem is not None:
                error = {"code": problem.code, "message": problem.message, "param": problem.param}
                db.execute(
                    "UPDATE fine_tuning_jobs SET status = 'failed', error = ?, finished_ts = ? WHERE id = ?",
                    (json.dumps(error), at, row["id"]),
                )
                lifecycle.record_event(db, row["id"], at, problem.message, level="error")
                return
            hyper = request["method"][method]["hyperparameters"]
            plan = content.resolve_plan(hyper, checked["training_file"], "validation_file" in checked)
            db.execute(
                "UPDATE fine_tuning_jobs SET status = 'queued', queued_ts = ?, plan = ? WHERE id = ?",
                (at, json.dumps(plan._asdict()), row["id"]),
            )
            lifecycle.record_event(db, row["id"], at, "Files validated, moving job to queued state")

    def _train(self, row: sqlite3.Row, now: float) -> bool:
        """Record the steps whose time has come, and finish the job when training time is over.
        Returns True when something changed."""
        plan = content.Plan(**json.loads(row["plan"]))
        start, length = row["started_ts"], self.config.fine_tuning_train_seconds
        due, finished = lifecycle.steps_due(plan, start, length, now)
        if due <= row["steps_done"] and not finished:
            return False
        model = lifecycle.model_name(row, self.config.organization_name)
        result_file = None
        if finished:
            result_file = self.state.backend("files").create_service_file(
                RESULTS_PURPOSE, content.RESULTS_FILENAME, content.results_csv(plan)
            )["id"]
        with self.db.write() as db:
            lifecycle.record_steps(db, row["id"], plan, (start, length), range(row["steps_done"] + 1, due + 1), model)
            db.execute("UPDATE fine_tuning_jobs SET steps_done = ? WHERE id = ?", (due, row["id"]))
            if finished:
                end = start + length
                lifecycle.record_checkpoint(
                    db, row["id"], end, plan.total_steps, model, content.step_metrics(plan, plan.total_steps)
                )
                db.execute(
                    "UPDATE fine_tuning_jobs SET status = 'succeeded', finished_ts = ?, fine_tuned_model = ?,"
                    " result_file = ? WHERE id = ?",
                    (end, model, result_file, row["id"]),
                )
                lifecycle.record_event(db, row["id"], end, f"New fine-tuned model created: {model}")
                lifecycle.record_event(db, row["id"], end, "The job has successfully completed")
        return True

    # ---- reading ------------------------------------------------------------------------------------
    def get_job(self, job_id: str) -> dict[str, Any]:
        return render.job_dict(self.config, self._advance(job_id))

    def list_jobs(
        self, *, after: str | None, limit: int | None, metadata: dict[str, str] | None, null_metadata: bool = False
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first; ``metadata``: every pair must match; ``null_metadata``: jobs without any."""
        db = self.db.connection()
        clauses, params = [], []
        if after is not None:
            cursor = db.execute("SELECT seq FROM fine_tuning_jobs WHERE id = ?", (after,)).fetchone()
            if cursor is None:
                raise errors.bad_fine_tuning_cursor("fine-tuning job", after)
            clauses.append("seq < ?")
            params.append(cursor["seq"])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        ids = [r["id"] for r in db.execute(f"SELECT id FROM fine_tuning_jobs {where} ORDER BY seq DESC", params)]
        jobs = []
        for job_id in ids:
            job = self.get_job(job_id)
            stored = job["metadata"] or {}
            if null_metadata and stored:
                continue
            if metadata and any(stored.get(k) != v for k, v in metadata.items()):
                continue
            jobs.append(job)
            if limit is not None and len(jobs) > limit:
                break
        has_more = limit is not None and len(jobs) > limit
        return jobs[:limit], has_more

    def _page(
        self, table: str, job_id: str, after: str | None, limit: int, what: str
    ) -> tuple[list[sqlite3.Row], bool]:
        self._advance(job_id)
        return lifecycle.page_rows(self.db.connection(), table, job_id, after, limit, what)

    def list_events(self, job_id: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Newest first."""
        rows, has_more = self._page("fine_tuning_events", job_id, after, limit, "event")
        events = [render.event_dict(r) for r in rows]
        return events, has_more

    def list_checkpoints(self, job_id: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Newest first."""
        rows, has_more = self._page("fine_tuning_checkpoints", job_id, after, limit, "checkpoint")
        checkpoints = [render.checkpoint_dict(r, job_id) for r in rows]
        return checkpoints, has_more

    def all_jobs(self) -> list[dict[str, Any]]:
        """Every job, oldest first (admin and tests)."""
        jobs, _ = self.list_jobs(after=None, limit=None, metadata=None)
        return list(reversed(jobs))

    # ---- cancelling ---------------------------------------------------------------------------------
    def cancel_job(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._advance(job_id)
            if row["status"] in TERMINAL:
                raise errors.fine_tuning_not_cancellable(job_id, row["status"])
            now = self.clock.now()
            with self.db.write() as db:
                db.execute(
                    "UPDATE fine_tuning_jobs SET status = 'cancelled', finished_ts = ? WHERE id = ?", (now, job_id)
                )
                lifecycle.record_event(db, job_id, now, "Fine-tuning job cancelled")
            return render.job_dict(self.config, self._row(job_id))

    def pause_job(self, job_id: str) -> dict[str, Any]:
        """``running`` -> ``paused``: training stops where it is until the job is resumed."""
        with self._lock:
            row = self._advance(job_id)
            if row["status"] != "running":
                raise errors.fine_tuning_wrong_status("pause", job_id, row["status"])
            now = self.clock.now()
            with self.db.write() as db:
                db.execute("UPDATE fine_tuning_jobs SET status = 'paused', paused_ts = ? WHERE id = ?", (now, job_id))
                lifecycle.record_event(db, job_id, now, "Fine-tuning job paused")
            return render.job_dict(self.config, self._row(job_id))

    def resume_job(self, job_id: str) -> dict[str, Any]:
        """``paused`` -> ``running``: the rest of training takes the time it had left."""
        with self._lock:
            row = self._advance(job_id)
            if row["status"] != "paused":
                raise errors.fine_tuning_wrong_status("resume", job_id, row["status"])
            now = self.clock.now()
            with self.db.write() as db:
                db.execute(
                    "UPDATE fine_tuning_jobs SET status = 'running', started_ts = started_ts + ?, paused_ts = NULL"
                    " WHERE id = ?",
                    (now - row["paused_ts"], job_id),
                )
                lifecycle.record_event(db, job_id, now, "Fine-tuning job resumed")
            return render.job_dict(self.config, self._row(job_id))

    # ---- lifecycle ----------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock, self.db.write() as db:
            for table in ("fine_tuning_jobs", "fine_tuning_events", "fine_tuning_checkpoints"):
                db.execute(f"DELETE FROM {table}")
