"""What a fine-tuning job's ``status`` and events mean: read by the hook, operator, sensor and trigger.

Pure (no Airflow, no HTTP), the shape every module of :mod:`airflow_openai_files.resources` has, so the
worker and the triggerer decide and log identically.

Statuses: OpenAI's job object reports ``validating_files``, ``queued``, ``running``, ``succeeded``,
``failed`` and ``cancelled`` (the SDK's literal); Azure OpenAI also reports ``pausing`` / ``paused``
(and ``pending``, ``cancelling``) for jobs that are paused. Unknown non-terminal statuses are
waited through rather than treated as failures: a new status must not fail a running job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from airflow_openai_files.limits import (
    FINE_TUNING_CHECKPOINT_ID_PREFIX,
    FINE_TUNING_EVENT_ID_PREFIX,
    FINE_TUNING_JOB_ID_PREFIX,
    FINE_TUNING_JOB_ID_RE,
)
from airflow_openai_files.resources import Verdict, check_statuses

KIND = "fine-tuning job"
ID_PATTERN = FINE_TUNING_JOB_ID_RE
ID_PREFIX = FINE_TUNING_JOB_ID_PREFIX
EVENT_ID_PREFIX = FINE_TUNING_EVENT_ID_PREFIX
CHECKPOINT_ID_PREFIX = FINE_TUNING_CHECKPOINT_ID_PREFIX
#: The purpose a training or validation file must have, and the one of the results file a job creates.
TRAINING_PURPOSE = "fine-tune"
RESULTS_PURPOSE = "fine-tune-results"

TERMINAL = ("succeeded", "failed", "cancelled")
SUCCESS = ("succeeded",)
FAILURE = ("failed", "cancelled")
#: Statuses a job passes through (for reading; any status not in ``TERMINAL`` is waited through).
WAITING = ("validating_files", "queued", "running", "pausing", "paused", "pending", "cancelling")
#: The statuses an OpenAI job passes through when all goes well, in order.
LIFECYCLE = ("validating_files", "queued", "running", "succeeded")


def check_target(statuses: Any) -> tuple[str, ...]:
    """Terminal statuses only (``succeeded`` by default)."""
    return check_statuses(statuses, TERMINAL, "success_statuses")


def describe(job: dict[str, Any]) -> str:
    """``"Fine-tuning job ftjob-abc is running (model gpt-4.1-mini, 1200 trained tokens)"``."""
    extra = ""
    if job.get("status") == "running" and job.get("estimated_finish"):
        extra = f", estimated finish at unix time {job['estimated_finish']}"
    return (
        f"Fine-tuning job {job.get('id', '?')} is {job.get('status') or 'of unknown status'} "
        f"(model {job.get('model')}, {job.get('trained_tokens') or 0} trained tokens{extra})"
    )


def job_error_message(job: dict[str, Any]) -> str:
    """``Fine-tuning job ftjob-x failed: <message> (code=..., param=training_file, line=7)``."""
    error = job.get("error") or {}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    message = str(error.get("message") or "the service gave no error message")
    details = [f"{name}={error[name]}" for name in ("code", "param", "line") if error.get(name) not in (None, "")]
    file_ref = ""
    param = error.get("param")
    if param in ("training_file", "validation_file") and job.get(param):
        file_ref = f"; {param} is {job[param]}"
    suffix = f" ({', '.join(details)}{file_ref})" if details or file_ref else ""
    return f"Fine-tuning job {job.get('id', '?')} failed: {message}{suffix}"


def judge(job: dict[str, Any], target: tuple[str, ...] = SUCCESS) -> Verdict:
    """``success`` in a ``target`` status; ``error`` in another terminal one (``failed``: with the job's
    ``error``); else ``waiting``, also for a status this package does not know (a new status must not
    fail a running job)."""
    job_id = job.get("id", "?")
    status = str(job.get("status") or "")
    if status in target:
        if status == "succeeded":
            return Verdict(
                "success",
                f"Fine-tuning job {job_id} succeeded: model {job.get('fine_tuned_model')}, "
                f"{job.get('trained_tokens')} trained tokens, result files {job.get('result_files') or []}",
            )
        return Verdict("success", describe(job))
    if status == "failed":
        return Verdict("error", job_error_message(job))
    if status == "cancelled":
        return Verdict("error", f"Fine-tuning job {job_id} was cancelled")
    if status in TERMINAL:
        return Verdict("error", describe(job))
    return Verdict("waiting", describe(job))


def format_event(event: dict[str, Any]) -> str:
    """One event for the log: ``[info] Step 12/30: training loss=1.23 {"train_loss": ...}``."""
    text = f"[{event.get('level', 'info')}] {event.get('message', '')}"
    data = event.get("data")
    if event.get("type") == "metrics" and isinstance(data, dict) and data:
        text += " " + json.dumps(data, sort_keys=True)
    return text


def unseen_events(newest_first: Iterable[dict[str, Any]], last_seen_id: str | None, limit: int) -> list[dict[str, Any]]:
    """
    The events after ``last_seen_id``, oldest first, from a newest-first listing.

    Stops reading at the last seen event (so a poll reads one page in the usual case) or after
    ``limit`` events (a first look at a long job shows its latest ``limit`` events only).
    """
    fresh: list[dict[str, Any]] = []
    for event in newest_first:
        if last_seen_id is not None and event.get("id") == last_seen_id:
            break
        fresh.append(event)
        if len(fresh) >= limit:
            break
    fresh.reverse()
    return fresh


#: The metrics of a step event, in the order a summary shows them, with their words.
_SUMMARY_FIELDS = (
    ("train_loss", "training loss"),
    ("valid_loss", "validation loss"),
    ("full_valid_loss", "full validation loss"),
    ("train_mean_token_accuracy", "training accuracy"),
    ("valid_mean_token_accuracy", "validation accuracy"),
    ("full_valid_mean_token_accuracy", "full validation accuracy"),
)
_STEP_OF = re.compile(r"Step (\d+)/(\d+)")


def metrics_summary(event: dict[str, Any]) -> str:
    """``step 12/30: training loss 1.2300, validation loss 1.4000, training accuracy 0.5500`` (what is there)."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    assert isinstance(data, dict)
    of = _STEP_OF.search(str(event.get("message") or ""))
    step = f"step {data.get('step', of.group(1) if of else '?')}" + (f"/{of.group(2)}" if of else "")
    values = [f"{words} {data[key]:.4f}" for key, words in _SUMMARY_FIELDS if isinstance(data.get(key), (int, float))]
    return f"{step}: {', '.join(values) or 'no metrics'}"


def not_found_message(job_id: str) -> str:
    """How a 404 for a fine-tuning job reads (the transports add the status and the request id)."""
    return (
        f"Fine-tuning job {job_id} does not exist (HTTP 404): check the id and that the connection points at "
        "the organization and project that created it"
    )


def result_destination(destination: Any, index: int, count: int) -> Any:
    """Where result file ``index`` of ``count`` lands: ``destination`` itself for the first, then
    ``results.1.csv``, ``results.2.csv`` ... (``destination.1`` ... without an extension)."""
    if not destination:
        return None
    if count == 1 or index == 0:
        return destination
    text = str(destination)
    stem, dot, ext = text.rpartition(".")
    return f"{stem}.{index}.{ext}" if dot and "/" not in ext else f"{text}.{index}"


def job_summary(
    job: dict[str, Any], result_files: list[str], paths: list[str], metrics: dict[str, Any]
) -> dict[str, Any]:
    """What the fine-tuning operator returns (``multiple_outputs``) for a succeeded job."""
    return {
        "job_id": job["id"],
        "status": job.get("status"),
        "fine_tuned_model": job.get("fine_tuned_model"),
        "trained_tokens": job.get("trained_tokens"),
        "result_files": result_files,
        "results_path": (paths[0] if len(paths) == 1 else paths) if paths else None,
        "metrics": metrics,
    }
