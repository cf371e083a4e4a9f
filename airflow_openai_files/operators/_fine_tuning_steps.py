"""Steps of :class:`~airflow_openai_files.operators.fine_tuning.OpenAIFineTuningJobOperator` that need
no operator state (the hook and the task's logger are passed in): what an earlier try left to resume
(its job, its uploads), the job's metadata, how far back a retried upload looks for an earlier try's
file, where each results file lands, the landing itself and the summary the task returns. Kept out
of the operator so the class holds only the task's flow and each rule can be read (and tested) on its own."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow_openai_files import resume as _resume
from airflow_openai_files.exceptions import OpenAIFilesError
from airflow_openai_files.resources import fine_tuning

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import Logger

    from airflow_openai_files.hooks import OpenAIFilesHook


def resumable_job(
    hook: OpenAIFilesHook, log: Logger, context: Context, record: _resume.TaskRecord
) -> dict[str, Any] | None:
    """The job an earlier try of this task instance created, if it can still be used."""
    job: dict[str, Any] | None = None
    job_id = record.get("job_id")
    if job_id:
        try:
            job = hook.get_fine_tuning_job(job_id)
        except OpenAIFilesError as err:
            if err.http_status != 404:
                raise
            log.warning("Recorded fine-tuning job %s no longer exists; creating a new one", job_id)
    key = _resume.task_key(context)
    if job is None and key and _resume.try_number(context) > 1:
        job = hook.find_fine_tuning_job({_resume.TASK_KEY_METADATA: key})
    if job is None:
        return None
    status = job.get("status")
    if status in fine_tuning.FAILURE:
        log.warning("Fine-tuning job %s of an earlier try ended %s; creating a new one", job["id"], status)
        return None
    log.info("Resuming fine-tuning job %s of an earlier try (status %s)", job["id"], status)
    return job


def recorded_upload(hook: OpenAIFilesHook, log: Logger, record: _resume.TaskRecord, role: str) -> dict[str, Any] | None:
    """The ``role`` file an earlier try uploaded and recorded, if it still exists."""
    file_id = record.get(f"{role}_file_id")
    if not file_id:
        return None
    try:
        file = hook.get_file(file_id)
    except OpenAIFilesError as err:
        if err.http_status != 404:
            raise
        return None
    log.info("Reusing %s file %s uploaded by an earlier try", role, file_id)
    return file


def job_metadata(metadata: dict[str, str] | None, context: Context) -> dict[str, str]:
    """The user's metadata plus the task's key, by which a retried try finds the job it created."""
    result = dict(metadata or {})
    key = _resume.task_key(context)
    if key:
        result[_resume.TASK_KEY_METADATA] = key
    return result


def reconcile_since(context: Context) -> float | None:
    """
    For a retried try, the unix time from which the upload looks for the file an earlier try sent:
    the DAG run's start (or queue) time, else a day ago. ``None`` on the first try (nothing to find).
    """
    if _resume.try_number(context) <= 1:
        return None
    dag_run = context.get("dag_run")
    start = getattr(dag_run, "start_date", None) or getattr(dag_run, "queued_at", None)
    return start.timestamp() if start is not None else time.time() - 24 * 3600


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


def land_results(hook: OpenAIFilesHook, job: dict[str, Any], destination: Any, overwrite: bool) -> dict[str, Any]:
    """Read (and, with a ``destination``, land) the job's result files; return the task's summary."""
    result_files = [str(f) for f in job.get("result_files") or []]
    paths: list[str] = []
    metrics: dict[str, Any] = {}
    for index, file_id in enumerate(result_files):
        where = result_destination(destination, index, len(result_files))
        path, metrics = hook.fine_tuning_results(file_id, where, overwrite=overwrite)
        if path is not None:
            paths.append(path)
    return job_summary(job, result_files, paths, metrics)


def job_summary(
    job: dict[str, Any], result_files: list[str], paths: list[str], metrics: dict[str, Any]
) -> dict[str, Any]:
    """What the operator returns (``multiple_outputs``) for a succeeded job."""
    return {
        "job_id": job["id"],
        "status": job.get("status"),
        "fine_tuned_model": job.get("fine_tuned_model"),
        "trained_tokens": job.get("trained_tokens"),
        "result_files": result_files,
        "results_path": (paths[0] if len(paths) == 1 else paths) if paths else None,
        "metrics": metrics,
    }
