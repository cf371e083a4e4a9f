"""How fine-tuning rows look on the wire: ``fine_tuning.job``, ``fine_tuning.job.event`` and
``fine_tuning.job.checkpoint`` objects, field for field as in the official SDK's types (plus
``user_provided_suffix``, which the service sends)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from airflow_openai_files.emulator.core.config import EmulatorConfig


def job_dict(config: EmulatorConfig, row: sqlite3.Row) -> dict[str, Any]:
    """The ``fine_tuning.job`` object of a row (hyperparameters resolved once training starts)."""
    request = json.loads(row["request"])
    method = request["method"]
    hyper = dict(method[method["type"]]["hyperparameters"])
    if row["plan"] is not None and row["status"] not in ("queued", "failed"):
        plan = json.loads(row["plan"])
        for name in ("n_epochs", "batch_size", "learning_rate_multiplier"):
            if hyper.get(name) == "auto":
                hyper[name] = plan[name]
        method = {**method, method["type"]: {**method[method["type"]], "hyperparameters": hyper}}
    running = row["status"] == "running"
    return {
        "id": row["id"],
        "object": "fine_tuning.job",
        "created_at": row["created_at"],
        "error": json.loads(row["error"]) if row["error"] else None,
        "fine_tuned_model": row["fine_tuned_model"],
        "finished_at": int(row["finished_ts"]) if row["finished_ts"] is not None else None,
        "hyperparameters": {k: hyper[k] for k in ("n_epochs", "batch_size", "learning_rate_multiplier")},
        "model": request["model"],
        "organization_id": config.organization_id,
        "result_files": [row["result_file"]] if row["result_file"] else [],
        "seed": request["seed"],
        "status": row["status"],
        "trained_tokens": json.loads(row["plan"])["trained_tokens"] if row["status"] == "succeeded" else None,
        "training_file": request["training_file"],
        "validation_file": request["validation_file"],
        "estimated_finish": int(row["started_ts"] + config.fine_tuning_train_seconds) if running else None,
        "integrations": request["integrations"],
        "metadata": request["metadata"],
        "method": method,
        "user_provided_suffix": request["suffix"],
    }


def event_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "fine_tuning.job.event",
        "created_at": row["created_at"],
        "level": row["level"],
        "message": row["message"],
        "data": json.loads(row["data"]) if row["data"] else {},
        "type": row["type"],
    }


def checkpoint_dict(row: sqlite3.Row, job_id: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "fine_tuning.job.checkpoint",
        "created_at": row["created_at"],
        "fine_tuned_model_checkpoint": row["model"],
        "fine_tuning_job_id": job_id,
        "metrics": json.loads(row["metrics"]),
        "step_number": row["step_number"],
    }
