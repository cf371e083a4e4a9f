"""``OpenAIFineTuningJobOperator``: from a training file (an id or a JSONL to validate and upload) to
a fine-tuned model, its results CSV and final metrics.

Retry-safe end to end (:mod:`airflow_openai_files.resume`): uploads reuse what an earlier try uploaded
(task state store, else the filename/size/purpose look-up), the job carries the task's key in its
metadata and is resumed, never created twice, by a retried try; a failed job fails the task once (the job's
``error`` cannot heal by retrying), a timeout leaves the job running for the next try to resume.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_openai_files import resume as _resume
from airflow_openai_files._compat import AirflowException, AirflowFailException, conf
from airflow_openai_files.exceptions import OpenAIFilesError
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS, OpenAIBaseOperatorMixin
from airflow_openai_files.resources import fine_tuning
from airflow_openai_files.resources.fine_tuning import job_summary, result_destination, unseen_events
from airflow_openai_files.transfer.progress import EventLog
from airflow_openai_files.validation import check_fine_tuning_method

if TYPE_CHECKING:
    from airflow.sdk import Context

EVENTS_PER_POLL = 200
#: Seconds between two checks of an uploaded file's status (Azure: until ``processed``).
FILE_POLL_SECONDS = 2.0


class OpenAIFineTuningJobOperator(OpenAIBaseOperatorMixin, BaseOperator):
    """
    Run a fine-tuning job to the end and return its model name, results and final metrics.

    Returns (and, with ``multiple_outputs``, pushes each key of)
    ``{"job_id", "status", "fine_tuned_model", "trained_tokens", "result_files", "results_path", "metrics"}``:
    ``results_path`` is where the ``fine-tune-results`` CSV was landed (None without
    ``results_destination``; a list when a job has several result files), ``metrics`` the CSV's last
    row as a dict (``{"step": 36, "train_loss": 0.21, ...}``).

    :param training_file: a ``file-...`` id, or a local path / ObjectStoragePath / ``s3://...`` URL of
        JSONL that is checked for ``method`` and uploaded with purpose ``fine-tune`` (templated).
    :param model: the base model (templated).
    :param validation_file: like ``training_file``, optional (templated).
    :param method: ``"supervised"`` (default), ``"dpo"``, ``"reinforcement"`` or the API's method dict.
    :param hyperparameters: ``{"n_epochs": 3, ...}`` (templated).
    :param suffix: put in the model name, at most 64 characters (templated).
    :param seed: for reproducible jobs.
    :param metadata: up to 14 string pairs stored on the job (two more are used for resuming) (templated).
    :param results_destination: where to land the results CSV: a path, ObjectStoragePath or URL (templated).
    :param overwrite: replace an existing ``results_destination``.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between two checks of the job.
    :param timeout: seconds to wait for the job at most; the job keeps running after a timeout and a
        retried try resumes it.
    :param cancel_on_kill: cancel the job when the task is killed.
    :param openai_conn_id: the ``openai_files`` connection (templated).
    """

    template_fields: Sequence[str] = (
        "training_file",
        "model",
        "validation_file",
        "hyperparameters",
        "suffix",
        "metadata",
        "results_destination",
        *CONN_TEMPLATE_FIELDS,
    )
    ui_color = "#f4ecf7"

    def __init__(
        self,
        *,
        training_file: Any,
        model: str,
        validation_file: Any = None,
        method: Any = None,
        hyperparameters: dict[str, Any] | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        metadata: dict[str, str] | None = None,
        results_destination: Any = None,
        overwrite: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 60,
        timeout: float = 7 * 24 * 3600,
        cancel_on_kill: bool = True,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)  # ``job.output["fine_tuned_model"]`` works downstream
        super().__init__(openai_conn_id=openai_conn_id, **kwargs)
        self.check_at_parse(self.task_id, check_fine_tuning_method, method)
        self.training_file = training_file
        self.model = model
        self.validation_file = validation_file
        self.method = method
        self.hyperparameters = hyperparameters
        self.suffix = suffix
        self.seed = seed
        self.metadata = metadata
        self.results_destination = results_destination
        self.overwrite = overwrite
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.cancel_on_kill = cancel_on_kill
        self._job_id: str | None = None
        self._event_log: EventLog | None = None

    # -- the run ------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        method = self.check_at_run(check_fine_tuning_method, self.method)
        record = _resume.TaskRecord(context, "fine_tuning_job")
        key = _resume.task_key(context)

        def find(since: float | None) -> dict[str, Any] | None:
            return self.hook.find_fine_tuning_job({_resume.TASK_KEY_METADATA: key}, since=since) if key else None

        def create() -> dict[str, Any]:
            training = self._file_input(self.training_file, "training", method, context, record)
            validation = (
                self._file_input(self.validation_file, "validation", method, context, record)
                if self.validation_file
                else None
            )
            return self.hook.create_fine_tuning_job(
                training,
                self.model,
                validation_file=validation,
                method=self.method,
                hyperparameters=self.hyperparameters,
                suffix=self.suffix or None,
                seed=self.seed,
                metadata=_resume.with_task_key(self.metadata, context),
            )

        job, _ = _resume.resume_or_create(
            record,
            "job",
            context=context,
            what="fine-tuning job",
            fetch=self.hook.get_fine_tuning_job,
            create=create,
            find=find,
            # A failed or cancelled job stays so: a retry the user asked for (a cleared task) starts anew.
            unusable=lambda job: f"ended {job['status']}" if job.get("status") in fine_tuning.FAILURE else None,
            logger=self.log,
        )
        self._job_id = job["id"]
        started = time.time()
        if self.deferrable and not fine_tuning.judge(job).done:
            last_event = self._log_events(job["id"], None)
            self._defer(job["id"], last_event, started)
        return self._wait_in_worker(job, started)

    def _file_input(self, value: Any, role: str, method: str, context: Context, record: _resume.TaskRecord) -> str:
        """A file id as given, or the id of the validated, uploaded (and ``processed``) JSONL."""
        from airflow_openai_files.resources.files import extract_file_id, looks_like_file_id

        value = extract_file_id(value)
        if looks_like_file_id(value):
            return str(self._wait_processed(self.hook.get_file(value.strip()))["id"])
        file = _resume.upload_once(
            self.hook,
            context,
            record,
            f"{role}_file",
            source=value,
            purpose="fine-tune",
            upload=lambda: self._validate_and_upload(value, role, method, context),
            what=f"{role} file",
            logger=self.log,
        )
        return str(self._wait_processed(file)["id"])

    def _validate_and_upload(self, value: Any, role: str, method: str, context: Context) -> dict[str, Any]:
        from airflow_openai_files.transfer.sources import resolve_source
        from airflow_openai_files.validation import check_fine_tune_file

        source = resolve_source(value)
        try:
            with source.open() as stream:
                self.check_at_run(lambda: check_fine_tune_file(stream, method, name=source.description, role=role))
        finally:
            source.close()
        self.log.info("%s file %s is valid %s data; uploading it", role.capitalize(), source.description, method)
        # Its own record: the Uploads API journal of the training file must not be taken for the validation file's.
        journal = _resume.TaskRecord(context, f"fine_tuning_job.{role}_file")
        return self.hook.upload_file(value, "fine-tune", validate=False, resume=journal if journal.available else None)

    def _wait_processed(self, file: dict[str, Any]) -> dict[str, Any]:
        """Azure OpenAI refuses a job whose file is not ``processed`` yet; OpenAI answers it at once."""
        from airflow_openai_files.hooks.waiting import wait_until
        from airflow_openai_files.resources import files

        file, verdict = wait_until(
            lambda: self.hook.get_file(file["id"]),
            files.judge,
            poll_interval=min(FILE_POLL_SECONDS, self.poll_interval),
            timeout=self.timeout,
            describe=files.describe,
            what=f"{file['id']} to be processed",
            first=file,
            log=self.log,
        )
        if verdict.state == "error":
            raise AirflowFailException(verdict.message)
        return file

    # -- waiting -------------------------------------------------------------------------------------

    def _log_events(self, job_id: str, last_seen: str | None, *, done: bool = False) -> str | None:
        """Log the job's events after ``last_seen`` (step metrics summarised); return the newest event id."""
        fresh = unseen_events(self.hook.list_fine_tuning_events(job_id, page_size=100), last_seen, EVENTS_PER_POLL)
        if self._event_log is None or self._event_log.job_id != job_id:
            self._event_log = EventLog(self.log, job_id)
        self._event_log.record(fresh, done=done)
        return fresh[-1].get("id") if fresh else last_seen

    def _wait_in_worker(self, job: dict[str, Any], started: float) -> dict[str, Any]:
        from airflow_openai_files.exceptions import OpenAIFilesTimeoutError
        from airflow_openai_files.hooks.waiting import wait_until

        last_event: str | None = self._log_events(job["id"], None)

        def fetch() -> dict[str, Any]:
            nonlocal last_event
            fetched = self.hook.get_fine_tuning_job(job["id"])
            last_event = self._log_events(job["id"], last_event, done=fetched.get("status") in fine_tuning.TERMINAL)
            return fetched

        try:
            job, verdict = wait_until(
                fetch,
                fine_tuning.judge,
                poll_interval=self.poll_interval,
                timeout=self.timeout - (time.time() - started),
                describe=fine_tuning.describe,
                what=f"fine-tuning job {job['id']} to finish",
                first=job,
                log=self.log,
            )
        except OpenAIFilesTimeoutError as err:
            raise err.reworded(f"{err.message}; it keeps running and a retry of this task resumes it") from None
        return self._finish(verdict.state, verdict.message, job)

    def _defer(self, job_id: str, last_event: str | None, started: float) -> None:
        from airflow_openai_files.triggers import OpenAIFineTuningJobTrigger

        self.log.info(
            "Deferring: the triggerer checks %s every %.0fs for up to %.0fs", job_id, self.poll_interval, self.timeout
        )
        self.defer_to_trigger(
            OpenAIFineTuningJobTrigger(
                job_id,
                last_event_id=last_event,
                cancel_on_kill=self.cancel_on_kill,
                openai_conn_id=self.openai_conn_id,
                poll_interval=self.poll_interval,
                timeout=self.timeout,
                deadline=started + self.timeout,
            ),
            timeout=self.timeout,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger's one event."""
        self._job_id = (event or {}).get("job_id")
        outcome = self.trigger_outcome(event, "job")
        if outcome.status == "timeout":
            raise AirflowException(f"{outcome.message}; the job keeps running and a retry of this task resumes it")
        if outcome.obj is None:  # a poll failed for good (the trigger could not read the job)
            raise AirflowException(f"{self.task_id}: {outcome.message}")
        return self._finish(outcome.status, outcome.message, outcome.obj)

    # -- the end -------------------------------------------------------------------------------------

    def _finish(self, outcome: str, message: str, job: dict[str, Any]) -> dict[str, Any]:
        if outcome != "success":
            # A failed or cancelled job stays failed: retrying the task cannot change its ``error``.
            raise AirflowFailException(message)
        result = self._land_results(job)
        self.log.info(
            "Fine-tuned model %s from job %s (%s trained tokens); final metrics %s%s",
            result["fine_tuned_model"],
            job["id"],
            result["trained_tokens"],
            result["metrics"],
            f"; results at {result['results_path']}" if result["results_path"] is not None else "",
        )
        return result

    def _land_results(self, job: dict[str, Any]) -> dict[str, Any]:
        """Read (and, with a ``results_destination``, land) the job's result files; return the task's summary."""
        result_files = [str(f) for f in job.get("result_files") or []]
        paths: list[str] = []
        metrics: dict[str, Any] = {}
        for index, file_id in enumerate(result_files):
            where = result_destination(self.results_destination, index, len(result_files))
            path, metrics = self.hook.fine_tuning_results(file_id, where, overwrite=self.overwrite)
            if path is not None:
                paths.append(path)
        return job_summary(job, result_files, paths, metrics)

    def on_kill(self) -> None:
        if not self.cancel_on_kill or not self._job_id:
            return
        try:
            job = self.hook.cancel_fine_tuning_job(self._job_id)
        except OpenAIFilesError as err:
            self.log.warning("Task killed; could not cancel fine-tuning job %s: %s", self._job_id, err)
            return
        self.log.info("Task killed: fine-tuning job %s is %s", self._job_id, job.get("status"))
