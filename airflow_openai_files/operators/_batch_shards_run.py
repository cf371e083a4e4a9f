"""The operator side of a sharded batch job: when to shard, the loop (on the worker or through the triggerer),
timeouts, and the knobs :class:`~airflow_openai_files.operators._batch_shards.ShardedJob` reads.

A mixin of :class:`~airflow_openai_files.operators.batches.OpenAIBatchOperator` (one operator: an input within
one batch runs exactly as before), kept apart so the operator's module holds the single-batch flow.
"""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_openai_files import resume as _resume
from airflow_openai_files._compat import AirflowException, AirflowFailException
from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.limits import BATCH_FILE_MAX_BYTES, BATCH_MAX_LINES, FILE_ID_RE
from airflow_openai_files.resources.batches import allowed_failures
from airflow_openai_files.validation import check_batch_endpoint, timeout_seconds

if TYPE_CHECKING:
    from airflow.sdk import Context

#: A backstop for the scheduler's deferral timeout, so the trigger's own (clearer) timeout event wins.
DEFER_TIMEOUT_MARGIN = 60.0


def check_shard_arguments(
    max_enqueued_tokens: Any,
    max_concurrent_batches: Any,
    max_line_attempts: Any,
    max_batch_lines: Any,
    max_batch_bytes: Any,
    expires_after: Any,
    output_expires_after: Any,
) -> None:
    """The sharded job's arguments: positive whole numbers within the service's limits (expiries 3,600..2,592,000 s)."""
    from airflow_openai_files.limits import BATCH_FILE_MAX_BYTES, BATCH_MAX_LINES
    from airflow_openai_files.validation import check_expiry

    def whole(name: str, value: Any, low: int, high: int | None, optional: bool) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            bound = f"from {low:,} to {high:,}" if high is not None else f"at least {low:,}"
            raise OpenAIFilesValidationError(f"{name} must be a whole number {bound}, got {value!r}")

    whole("max_enqueued_tokens", max_enqueued_tokens, 1, None, True)
    whole("max_concurrent_batches", max_concurrent_batches, 1, None, True)
    whole("max_line_attempts", max_line_attempts, 1, 100, False)
    whole("max_batch_lines", max_batch_lines, 1, BATCH_MAX_LINES, False)
    whole("max_batch_bytes", max_batch_bytes, 1, BATCH_FILE_MAX_BYTES, False)
    for name, value in (("expires_after", expires_after), ("output_expires_after", output_expires_after)):
        try:
            check_expiry(value)
        except OpenAIFilesValidationError as err:
            raise OpenAIFilesValidationError(f"{name}: {err.message}") from None


class ShardedBatchMixin:
    """
    Sharded jobs for :class:`~airflow_openai_files.operators.batches.OpenAIBatchOperator` (docs/batches-at-scale.md).

    An input (a path, not a file id) with more
    requests than ``max_batch_lines``, more bytes than ``max_batch_bytes``, or more estimated tokens than
    ``max_enqueued_tokens`` is split into shards on line boundaries, each submitted as its own batch within
    ``max_enqueued_tokens`` and ``max_concurrent_batches``; a ``token_limit_exceeded`` refusal or a failed
    batch puts its shard back in the queue with backoff; lines failed with a retryable error (429, 5xx,
    timeouts, ``batch_expired``) are sent again up to ``max_line_attempts``; the results are merged, in the
    input's order, into ``output_destination`` and ``error_destination``. It then returns, besides the keys
    above (``batch_id`` None), ``batch_ids``, ``shards`` (per shard: batch ids, counts, file ids),
    ``usage`` (``input_tokens``, ``output_tokens``, ``cached_tokens`` summed from the outputs) and
    ``order: "input"``. An input within one batch runs exactly as a single batch.

    :param max_enqueued_tokens: the model's enqueued-token budget for this job (estimated before submission);
        None: no budget of our own (the service's refusals are still handled).
    :param max_concurrent_batches: batches of the job in flight at once; None: no limit.
    :param max_line_attempts: how many times a line is sent at most (first attempt included).
    :param max_batch_lines: requests per shard (1 to 50,000).
    :param max_batch_bytes: bytes per shard (at most 200 MB).
    :param expires_after: seconds after which uploaded shard inputs expire (3,600 to 2,592,000); on Azure
        14 days by default (a resource holds at most 500 batch files without an expiry).
    :param output_expires_after: seconds after which each batch's output and error files expire; on Azure
        14 days by default.
    """

    def __init__(
        self,
        *,
        max_enqueued_tokens: int | None = None,
        max_concurrent_batches: int | None = None,
        max_line_attempts: int = 3,
        max_batch_lines: int = BATCH_MAX_LINES,
        max_batch_bytes: int = BATCH_FILE_MAX_BYTES,
        expires_after: int | None = None,
        output_expires_after: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check_at_parse(
            self.task_id,
            check_shard_arguments,
            max_enqueued_tokens,
            max_concurrent_batches,
            max_line_attempts,
            max_batch_lines,
            max_batch_bytes,
            expires_after,
            output_expires_after,
        )
        self.max_enqueued_tokens = max_enqueued_tokens
        self.max_concurrent_batches = max_concurrent_batches
        self.max_line_attempts = max_line_attempts
        self.max_batch_lines = max_batch_lines
        self.max_batch_bytes = max_batch_bytes
        self.expires_after = expires_after
        self.output_expires_after = output_expires_after
        self._job: Any = None

    if TYPE_CHECKING:
        task_id: str
        input_file: Any
        endpoint: str
        timeout: Any
        deferrable: bool
        poll_interval: float
        cancel_on_kill: bool
        openai_conn_id: str
        max_failed_requests: int | float
        _endpoint: str
        hook: Any
        log: Any

        def check_at_run(self, check: Any, *values: Any) -> Any: ...
        @staticmethod
        def check_at_parse(task_id: Any, check: Any, *values: Any) -> None: ...
        def defer(self, *, trigger: Any, method_name: str, kwargs: Any = None, timeout: Any = None) -> Any: ...

    def _sharded_job(self, context: Context, endpoint: str, deadline: float) -> dict[str, Any] | None:
        """Run the input as a sharded job if it needs more than one batch (or a try already sharded it), else None."""
        from airflow_openai_files.operators._batch_shards import ShardedJob
        from airflow_openai_files.resources.files import extract_file_id

        given = extract_file_id(self.input_file)
        if isinstance(given, str) and FILE_ID_RE.match(given):
            return None  # a file on the service is one batch, as always
        job = ShardedJob(self, context)
        recorded = bool(job.state)
        work_dir = self._work_dir(context)
        try:
            split = self._split(endpoint, work_dir)
            if len(split.shards) == 1 and not recorded:
                return None  # within one batch: exactly as before
            return self._start(context, endpoint, deadline, job, split, work_dir)
        finally:  # also when deferred: the job's state holds all a later step needs, the folder is this process's
            shutil.rmtree(work_dir, ignore_errors=True)

    def _start(self, context: Context, endpoint: str, deadline: float, job: Any, split: Any, work_dir: Any) -> Any:
        from airflow_openai_files.validation.core import check_metadata

        # Before any upload: each shard's batch carries the task key, the shard key and the hook's request key.
        self.check_at_run(lambda: check_metadata(getattr(self, "metadata", None), reserved=3))
        self._endpoint = endpoint
        self._job = job
        job.plan(split, work_dir, self._prefix(context, split.sha256))
        job.state["deadline"] = deadline  # this try's; a deferral of the same try keeps it
        job.save()
        self.log.info(
            "Job of %d requests (~%d tokens) in %d shards for %s",
            split.lines,
            split.tokens,
            len(split.shards),
            split.model,
        )
        return self._drive(context, job, work_dir, None)

    def _cancel_sharded_job(self) -> bool:
        """On kill: cancel the sharded job's in-flight batches (when ``cancel_on_kill``); False if there is none."""
        if self._job is None:
            return False
        if self.cancel_on_kill:
            cancelled = self._job.cancel_running()
            self.log.info("Task killed: cancelled batches %s of the sharded job", ", ".join(cancelled) or "(none)")
        return True

    def execute_complete_shards(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume a sharded job after :class:`~airflow_openai_files.triggers.OpenAIBatchShardsTrigger` fired."""
        from airflow_openai_files.operators._batch_shards import ShardedJob

        if not event:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event")
        self._endpoint = self.check_at_run(check_batch_endpoint, self.endpoint)
        job = ShardedJob(self, context, state=None)
        if not job.state:
            job.state = event.get("job") or {}
        if not job.state:
            raise AirflowException(f"{self.task_id}: resumed without the sharded job's state")
        self._job = job
        status = event.get("status")
        if status == "timeout":
            self._job_timed_out(job, str(event.get("message")))
        if status != "success":
            raise AirflowException(f"{self.task_id}: {event.get('message') or event!r}")
        work_dir = self._work_dir(context)
        try:
            return self._drive(context, job, work_dir, event.get("batches") or {})
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _drive(self, context: Context, job: Any, work_dir: Any, batches: dict[str, Any] | None) -> dict[str, Any]:
        from airflow_openai_files.triggers import OpenAIBatchShardsTrigger

        deadline = float(job.state.get("deadline") or time.time() + timeout_seconds(self.timeout))
        while True:
            wake = job.step(work_dir, batches)
            batches = None
            if wake is None:
                return job.merge(work_dir, self._index(context, job, work_dir))
            now = time.time()
            if now >= deadline:
                self._job_timed_out(job, "Timed out waiting for the sharded job")
            if self.deferrable:
                finished = [s for s in job.shards if s["status"] in ("ended", "collected")]
                answered = [
                    sum(s["counts"][1] for s in finished),
                    sum(s["counts"][2] - s["retried"] for s in finished),
                ]
                self.defer(
                    trigger=OpenAIBatchShardsTrigger(
                        [s["batch_id"] for s in job.running()],
                        job=job.state,
                        wake_at=None if wake == float("inf") else wake,
                        answered=answered,
                        total_lines=job.state["lines"],
                        shards=len(job.shards),
                        finished=len(finished),
                        openai_conn_id=self.openai_conn_id,
                        poll_interval=self.poll_interval,
                        timeout=max(0.0, deadline - now),
                        deadline=deadline,
                    ),
                    method_name="execute_complete_shards",
                    timeout=timedelta(seconds=max(0.0, deadline - now) + DEFER_TIMEOUT_MARGIN),
                )
            time.sleep(max(0.0, min(self.poll_interval, wake - now, deadline - now)))

    def _job_timed_out(self, job: Any, message: str) -> None:
        if self.cancel_on_kill:
            cancelled = job.cancel_running()
            if cancelled:
                message += f"; cancelled {', '.join(cancelled)}"
        raise AirflowFailException(f"{self.task_id}: {message}")

    def _work_dir(self, context: Context) -> Any:
        """This process's working folder for the job (shard files, the custom_id index): never shared, so two
        processes running the same task instance (a zombie and its retry) cannot remove each other's files."""
        import uuid

        from airflow_openai_files.operators._batch_shards import work_root

        work_dir = work_root() / f"{(_resume.task_key(context) or 'job')[:16]}-{uuid.uuid4().hex[:12]}"
        work_dir.mkdir(parents=True)
        return work_dir

    def _split(self, endpoint: str, work_dir: Any) -> Any:
        from airflow_openai_files.transfer.shards import ShardLimits, split_input
        from airflow_openai_files.transfer.sources import resolve_source

        shutil.rmtree(work_dir, ignore_errors=True)
        limits = self.check_at_run(
            lambda: ShardLimits(self.max_batch_lines, self.max_batch_bytes, self.max_enqueued_tokens)
        )
        source = resolve_source(self.input_file)
        try:
            with source.open() as stream:
                return self.check_at_run(
                    lambda: split_input(stream, endpoint, work_dir, limits, name=source.description)
                )
        finally:
            source.close()

    def _index(self, context: Context, job: Any, work_dir: Any) -> Any:
        """The job's custom_id index; split again (same input, same shards) on a worker that has none."""
        index = work_dir / "ids.sqlite"
        if not index.exists():
            split = self._split(self._endpoint, work_dir)
            if split.fingerprint != job.state["fingerprint"]:
                raise AirflowFailException(f"{self.task_id}: the input changed while its job ran; cannot merge")
        return index

    @staticmethod
    def _prefix(context: Context, sha256: str) -> str:
        return f"{(_resume.task_key(context) or 'job')[:12]}-{sha256[:8]}"

    def _run_started(self, context: Context) -> float | None:
        """When the DAG run started: a retry looks no further back for what an earlier try created."""
        dag_run = (context or {}).get("dag_run")
        started = getattr(dag_run, "start_date", None) or getattr(dag_run, "queued_at", None)
        return started.timestamp() if started is not None else None

    def _input_expiry(self) -> int | None:
        from airflow_openai_files.operators._batch_shards import AZURE_DEFAULT_EXPIRY_SECONDS

        if self.expires_after is not None:
            return int(self.expires_after)
        return AZURE_DEFAULT_EXPIRY_SECONDS if self.hook.settings.is_azure else None

    def _output_expiry(self) -> int | None:
        from airflow_openai_files.operators._batch_shards import AZURE_DEFAULT_EXPIRY_SECONDS

        if self.output_expires_after is not None:
            return int(self.output_expires_after)
        return AZURE_DEFAULT_EXPIRY_SECONDS if self.hook.settings.is_azure else None

    def _backoff_cap(self) -> float:
        return max(self.poll_interval, 10 * self.poll_interval)

    def _allowed_failures(self, total: int) -> int:
        return allowed_failures(self.max_failed_requests, total)
