"""``OpenAIBatchOperator``: submit a Batch API job, wait for it without pinning a worker, land its results.

A batch is paid work: a task retry must resume the batch an earlier try created, never submit a second
one. The operator records the batch id in the task state store (Airflow 3.3+) and puts a task key in the
batch's metadata (every version); a retry resumes the recorded batch, else the one it finds by that key
(:func:`~airflow_openai_files.resume.resume_or_create`). The input upload is reused the same way
(:func:`~airflow_openai_files.resume.upload_once`), and checked to still exist before a batch is made of it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator

from airflow_openai_files import resume as _resume
from airflow_openai_files._compat import AirflowException, AirflowFailException, conf
from airflow_openai_files.exceptions import OpenAIFilesTimeoutError
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.operators._batch_shards_run import ShardedBatchMixin
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS, OpenAIBaseOperatorMixin
from airflow_openai_files.resources import batches
from airflow_openai_files.resources.batches import batch_summary, judge_batch
from airflow_openai_files.validation import (
    check_batch_endpoint,
    check_completion_window,
    check_max_failed,
    parse_duration,
    timeout_seconds,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Added to the completion window for the default ``timeout``: the service finalizes after the window ends.
TIMEOUT_MARGIN = timedelta(hours=1)


class OpenAIBatchOperator(ShardedBatchMixin, OpenAIBaseOperatorMixin, BaseOperator):
    """
    Run a Batch API job from its input file to landed results, and return a summary.

    Returns (``multiple_outputs``) ``{"batch_id", "status", "request_counts", "input_file_id",
    "output_file_id", "error_file_id", "output_path", "error_path"}``.

    Failure policy (all :class:`AirflowFailException`: the same input cannot heal by a retry): the batch
    ended ``failed`` (the message lists the service's ``errors.data``); it ended with more requests
    without an answer (``total - completed``: failed, expired or cancelled lines) than
    ``max_failed_requests``; or ``timeout`` ran out (the batch is cancelled first when
    ``cancel_on_kill``). The error file is landed before the task fails.

    :param input_file: a ``file-...`` id of a ``batch`` file, or a local path / ObjectStoragePath /
        ``scheme://...`` string of a batch JSONL, checked (:func:`~airflow_openai_files.validation.check_batch_file`)
        and uploaded with purpose ``batch`` first (templated).
    :param endpoint: the endpoint every request line targets, e.g. ``/v1/chat/completions`` (templated).
    :param completion_window: ``24h``.
    :param metadata: up to 14 string pairs stored on the batch (templated).
    :param output_destination: where to land the output file (path, ObjectStoragePath, URL string) (templated).
    :param error_destination: where to land the error file (templated).
    :param overwrite: replace existing destinations.
    :param max_failed_requests: requests allowed to end without an answer: an int, or a fraction of the total.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between two checks of the batch.
    :param timeout: how long to wait for the batch (seconds, timedelta or ``"25h"``); the completion
        window plus one hour by default.
    :param cancel_on_kill: cancel the batch when the task is killed or times out.
    :param openai_conn_id: the ``openai_files`` connection (templated).

    An input path larger than one batch (requests, bytes, or the token budget) runs as a sharded job: see
    :class:`~airflow_openai_files.operators._batch_shards_run.ShardedBatchMixin` for its arguments
    (``max_enqueued_tokens``, ``max_concurrent_batches``, ``max_line_attempts``, ``max_batch_lines``,
    ``max_batch_bytes``, ``expires_after``, ``output_expires_after``; the last two apply to one batch too)
    and what it returns, and docs/batches-at-scale.md.
    """

    template_fields: Sequence[str] = (
        "input_file",
        "endpoint",
        "metadata",
        "output_destination",
        "error_destination",
        *CONN_TEMPLATE_FIELDS,
    )
    template_fields_renderers = {"metadata": "json"}
    ui_color = "#e8daef"

    def __init__(
        self,
        *,
        input_file: Any,
        endpoint: str,
        completion_window: str = "24h",
        metadata: dict[str, str] | None = None,
        output_destination: Any = None,
        error_destination: Any = None,
        overwrite: bool = False,
        max_failed_requests: int | float = 0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 60,
        timeout: timedelta | float | str | None = None,
        cancel_on_kill: bool = True,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(openai_conn_id=openai_conn_id, **kwargs)
        self.check_at_parse(self.task_id, check_batch_endpoint, endpoint)
        self.check_at_parse(self.task_id, check_completion_window, completion_window)
        self.check_at_parse(self.task_id, check_max_failed, max_failed_requests)
        self.input_file = input_file
        self.endpoint = endpoint
        self.completion_window = completion_window
        self.metadata = metadata
        self.output_destination = output_destination
        self.error_destination = error_destination
        self.overwrite = overwrite
        self.max_failed_requests = max_failed_requests
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval)
        if timeout is None:
            window = parse_duration(completion_window) if isinstance(completion_window, str) else None
            timeout = (window or timedelta(hours=24)) + TIMEOUT_MARGIN
        self.check_at_parse(self.task_id, timeout_seconds, timeout)
        self.timeout = timeout
        self.cancel_on_kill = cancel_on_kill
        self._batch_id: str | None = None

    # -- the task ---------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        endpoint = self.check_at_run(check_batch_endpoint, self.endpoint)
        timeout = self.check_at_run(timeout_seconds, self.timeout)
        self.check_at_run(check_max_failed, self.max_failed_requests)
        deadline = time.time() + timeout
        self._check_destinations()
        if (sharded := self._sharded_job(context, endpoint, deadline)) is not None:
            return sharded
        batch = self._resume_or_create(context, endpoint)
        self._batch_id = batch["id"]
        if batch.get("status") in batches.TERMINAL:
            return self._finish(batch)
        if self.deferrable:
            self._defer(batch, deadline)
        return self._finish(self._wait_on_worker(batch, deadline))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after :class:`~airflow_openai_files.triggers.OpenAIBatchTrigger` fired."""
        self._batch_id = (event or {}).get("batch_id")
        outcome = self.trigger_outcome(event, "batch")
        if outcome.status == "success" and outcome.obj:
            self.log.info("%s", batches.describe(outcome.obj))
            return self._finish(outcome.obj)
        self._log_last_known(event or {})
        if outcome.status == "timeout":
            self._timed_out(outcome.message)
        # A poll that failed for good (the trigger could not reach the batch): a retry resumes waiting on it.
        raise AirflowException(f"{self.task_id}: {outcome.message or event!r}")

    def _log_last_known(self, event: dict[str, Any]) -> None:
        """The last state the triggerer saw, for the person reading a timeout or a failed wait."""
        batch, counts = event.get("batch"), event.get("request_counts")
        if batch:
            self.log.info("Last known state: %s", batches.describe(batch))
        elif counts:
            self.log.info("Last known request counts of batch %s: %s", event.get("batch_id"), counts)

    def on_kill(self) -> None:
        hook = self.__dict__.get("hook")
        if hook is not None:
            hook.cancel_active_uploads()
        if self._cancel_sharded_job():
            return
        if self._batch_id and self.cancel_on_kill:
            self.log.info("Task killed: cancelling batch %s", self._batch_id)
            try:
                self.hook.cancel_batch(self._batch_id)
            except Exception as err:  # the kill must go on; say what is left running
                self.log.warning("Could not cancel batch %s (%s); it keeps running on the service", self._batch_id, err)

    # -- steps ------------------------------------------------------------------------------------------------

    def _resume_or_create(self, context: Context, endpoint: str) -> dict[str, Any]:
        record = _resume.TaskRecord(context, "batch")
        key = _resume.task_key(context)

        def find(since: float | None) -> dict[str, Any] | None:
            return self.hook.find_batch(_resume.TASK_KEY_METADATA, key, since=since) if key else None

        def create() -> dict[str, Any]:
            input_file_id = self._input_file_id(context, record, endpoint)
            self.hook.wait_for_input_file(input_file_id)  # Azure OpenAI takes only `processed` files; no-op on OpenAI
            metadata = _resume.with_task_key(self.metadata, context)
            return self.hook.create_batch(
                input_file_id,
                endpoint,
                completion_window=self.completion_window,
                metadata=metadata or None,
                output_expires_after_seconds=self._output_expiry(),  # Azure: 14 days unless given
            )

        batch, _ = _resume.resume_or_create(
            record,
            "batch",
            context=context,
            what="batch",
            fetch=self.hook.get_batch,
            create=create,
            find=find,
            logger=self.log,
        )
        return batch

    def _input_file_id(self, context: Context, record: _resume.TaskRecord, endpoint: str) -> str:
        """The input's file id: given, or uploaded (once: a retry reuses an earlier try's upload)."""
        from airflow_openai_files.resources.files import extract_file_id, looks_like_file_id
        from airflow_openai_files.transfer.sources import resolve_source
        from airflow_openai_files.validation import check_batch_file

        given = extract_file_id(self.input_file)
        if looks_like_file_id(given):
            return str(given).strip()

        def upload() -> dict[str, Any]:
            source = resolve_source(self.input_file)
            try:
                with source.open() as stream:
                    count = self.check_at_run(lambda: check_batch_file(stream, endpoint, name=source.description))
            finally:
                source.close()
            self.log.info("Checked %s: %d requests for %s", source.description, count, endpoint)
            return self.hook.upload_file(
                self.input_file,
                "batch",
                validate=False,
                resume=record if record.available else None,
                expires_after_seconds=self._input_expiry(),  # Azure: 14 days unless given
            )

        created = _resume.upload_once(
            self.hook,
            context,
            record,
            "input_file",
            source=self.input_file,
            purpose="batch",
            upload=upload,
            what="input file",
            logger=self.log,
        )
        return str(created["id"])

    def _defer(self, batch: dict[str, Any], deadline: float) -> None:
        from airflow_openai_files.triggers import OpenAIBatchTrigger

        remaining = max(0.0, deadline - time.time())
        self.log.info("%s; deferring: the triggerer checks it every %.0fs", batches.describe(batch), self.poll_interval)
        self.defer_to_trigger(
            OpenAIBatchTrigger(
                batch["id"],
                success_statuses=batches.TERMINAL,  # every end is judged here, after landing the results
                openai_conn_id=self.openai_conn_id,
                poll_interval=self.poll_interval,
                timeout=remaining,
                deadline=deadline,
            ),
            timeout=remaining,
        )

    def _wait_on_worker(self, batch: dict[str, Any], deadline: float) -> dict[str, Any]:
        from airflow_openai_files.hooks.waiting import wait_until

        try:
            batch, _ = wait_until(
                lambda: self.hook.get_batch(batch["id"]),
                lambda b: batches.judge(b, batches.TERMINAL),
                poll_interval=self.poll_interval,
                timeout=deadline - time.time(),
                describe=batches.describe,
                what=f"batch {batch['id']} to finish",
                first=batch,
                log=self.log,
            )
        except OpenAIFilesTimeoutError as err:
            self._timed_out(err.message)
        return batch

    def _timed_out(self, message: str) -> NoReturn:
        if self._batch_id and self.cancel_on_kill:
            self.log.warning("%s; cancelling it", message)
            self.hook.cancel_batch(self._batch_id)
            message += "; the batch was cancelled"
        raise AirflowFailException(f"{self.task_id}: {message}")

    def _finish(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Land the results (error file first), then fail or return the summary."""
        error_path = self._land(batch.get("error_file_id"), self.error_destination, "error")
        output_path = self._land(batch.get("output_file_id"), self.output_destination, "output")
        summary = batch_summary(batch, output_path, error_path)
        verdict, message, unanswered, allowed = judge_batch(batch, self.max_failed_requests, error_path)
        if verdict == "failed":  # the same input cannot heal by a retry
            raise AirflowFailException(f"{self.task_id}: {message}")
        if verdict == "unfinished":
            raise AirflowException(f"{self.task_id}: {message}")
        counts = summary["request_counts"]
        self.log.info(
            "Batch %s ended %s: %d of %d requests answered, %d without an answer (at most %d allowed)",
            batch["id"],
            summary["status"],
            counts["completed"],
            counts["total"],
            unanswered,
            allowed,
        )
        return summary

    def _check_destinations(self) -> None:
        """Refuse a destination that cannot be written before the batch is paid for, not a day later."""
        from airflow_openai_files.transfer.destinations import Destination

        for name in ("output_destination", "error_destination"):
            if getattr(self, name) not in (None, ""):
                Destination(getattr(self, name), overwrite=self.overwrite, name=name).check()

    def _land(self, file_id: str | None, destination: Any, kind: str) -> str | None:
        if not file_id or destination is None or destination == "":
            if file_id:
                self.log.info("The %s file %s stays on the service (no %s_destination)", kind, file_id, kind)
            return None
        return self.hook.download_file(file_id, destination, overwrite=self.overwrite, name=f"{kind}_destination")
