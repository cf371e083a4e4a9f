"""The fine-tuning lifecycle's pure parts, kept out of :class:`.backend.FineTuningBackend` (which holds
the state, the lock and the order of transitions): which training steps are due at a given time,
the model name, and the rows a transition writes (events, checkpoints, one page of either).

Every function takes the SQLite connection of the write (or read) it belongs to, so the backend keeps
deciding the transaction boundaries: a transition and its events commit together or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.db import new_id
from airflow_openai_files.emulator.fine_tuning import content
from airflow_openai_files.resources.fine_tuning import CHECKPOINT_ID_PREFIX, EVENT_ID_PREFIX

CHECKPOINTS_KEPT = 3  # the service keeps the checkpoints of the last three epochs


def record_event(
    db: sqlite3.Connection,
    job_id: str,
    at: float,
    message: str,
    *,
    level: str = "info",
    data: dict[str, Any] | None = None,
    kind: str = "message",
) -> None:
    db.execute(
        "INSERT INTO fine_tuning_events (id, job_id, created_at, level, message, data, type)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (new_id(EVENT_ID_PREFIX), job_id, int(at), level, message, json.dumps(data) if data else None, kind),
    )


def record_checkpoint(
    db: sqlite3.Connection, job_id: str, at: float, step: int, model: str, metrics: dict[str, Any]
) -> None:
    db.execute(
        "INSERT INTO fine_tuning_checkpoints (id, job_id, created_at, step_number, model, metrics)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (new_id(CHECKPOINT_ID_PREFIX), job_id, int(at), step, model, json.dumps(metrics)),
    )
    record_event(db, job_id, at, f"Checkpoint created at step {step}")


def model_name(row: sqlite3.Row, organization: str) -> str:
    """``ft:<base>:<org>:<suffix>:<id>``; the suffix slot stays empty when none was given."""
    request = json.loads(row["request"])
    return f"ft:{request['model']}:{organization}:{request['suffix'] or ''}:{row['id'][-8:]}"


def steps_due(plan: content.Plan, start: float, length: float, now: float) -> tuple[int, bool]:
    """``(steps done by now, training over)``: steps are spread evenly over the training time."""
    finished = now >= start + length
    due = plan.total_steps if finished else min(plan.total_steps, int((now - start) / length * plan.total_steps))
    return due, finished


def record_steps(
    db: sqlite3.Connection,
    job_id: str,
    plan: content.Plan,
    timing: tuple[float, float],
    steps: range,
    model: str,
) -> None:
    """A metrics event per step in ``steps`` (stamped when it was due, ``timing`` = (start, length)), and
    the checkpoints of the last :data:`CHECKPOINTS_KEPT` epochs (the final one is the model itself)."""
    start, length = timing
    per_epoch = max(1, plan.total_steps // plan.n_epochs)
    for step in steps:
        at = start + length * step / plan.total_steps
        metrics = content.step_metrics(plan, step)
        data = {**metrics, "total_steps": plan.total_steps}
        record_event(db, job_id, at, content.step_message(metrics, plan.total_steps), data=data, kind="metrics")
        epoch = step // per_epoch
        if step % per_epoch == 0 and epoch > plan.n_epochs - CHECKPOINTS_KEPT and step < plan.total_steps:
            record_checkpoint(db, job_id, at, step, f"{model}:ckpt-step-{step}", metrics)


def page_rows(
    db: sqlite3.Connection, table: str, job_id: str, after: str | None, limit: int, what: str
) -> tuple[list[sqlite3.Row], bool]:
    """One page (newest first) of a job's events or checkpoints, and whether more follow."""
    clauses, params = ["job_id = ?"], [job_id]
    if after is not None:
        cursor = db.execute(f"SELECT seq FROM {table} WHERE id = ? AND job_id = ?", (after, job_id)).fetchone()
        if cursor is None:
            raise errors.bad_fine_tuning_cursor(what, after)
        clauses.append("seq < ?")
        params.append(cursor["seq"])
    sql = f"SELECT * FROM {table} WHERE {' AND '.join(clauses)} ORDER BY seq DESC LIMIT ?"
    rows = db.execute(sql, [*params, limit + 1]).fetchall()
    return rows[:limit], len(rows) > limit
