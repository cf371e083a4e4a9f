"""The engine behind ``OpenAIBatchOperator`` for a job larger than one batch: shards, admission, line retries, merge.

The job's state is one JSON document (:class:`ShardedJob.state`), written to the task state store after every
change that costs money (an upload, a batch created) and carried through each deferral in the trigger, so:

* **Exactly once.** A shard's file is uploaded under a name derived from the task and the input
  (``<prefix>-shard-<key>.jsonl``), and its batch carries the task key and the shard key in ``metadata``
  (besides the hook's per-request key, ``REQUEST_KEY_METADATA``, which already makes one ``create_batch`` call
  idempotent). A retry reads the recorded state; for anything created after the last record (a worker killed
  between create and record) it lists the run's batches by those metadata keys and adopts them. A shard's
  batch is therefore never created twice, except after a ``token_limit_exceeded`` refusal or a failed batch,
  which are free (the service runs no line of a failed batch).
* **Admission.** Queued shards are submitted in order while the in-flight estimated tokens stay within
  ``max_enqueued_tokens`` and the in-flight batches within ``max_concurrent_batches``. A refused or failed
  batch puts its shard back in the queue with exponential backoff.
* **Line retries.** When a shard's batch ends, its error file is read; retryable lines
  (:func:`~airflow_openai_files.resources.batches.is_retryable_line`) are sent again as a new shard
  (``<key>r<attempt>``) until ``max_line_attempts``; the others stay errors.
* **Merge.** When every shard has ended and been collected, all outputs and the error lines that were not sent
  again are merged, in the input's order, into ``output_destination`` / ``error_destination``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_openai_files import resume as _resume
from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.resources.batches import (
    TERMINAL,
    admit,
    backoff_seconds,
    batch_errors,
    describe_shards,
    is_retryable_line,
    is_token_refusal,
    request_counts,
)
from airflow_openai_files.transfer import merge as _merge
from airflow_openai_files.transfer import shards as _shards

#: Metadata key naming a batch's shard (``"3"``, ``"3r2"``): with the task key it finds a shard's batch again.
SHARD_METADATA = "openai_files_shard"
#: Azure: default expiry of shard inputs and outputs (the resource holds at most 500 batch files without one;
#: Microsoft documents 14 to 30 days for ``expires_after`` / ``output_expires_after``).
AZURE_DEFAULT_EXPIRY_SECONDS = 14 * 24 * 3600
STATE_VERSION = 1


def new_shard(key: str, attempt: int, lines: int, size: int, tokens: int, sha256: str, **extra: Any) -> dict[str, Any]:
    """A shard's record in the job's state (JSON): what it holds, and where it stands."""
    return {
        "key": key,
        "attempt": attempt,
        "lines": lines,
        "bytes": size,
        "tokens": tokens,
        "sha256": sha256,
        "file_id": None,
        "batch_id": None,
        "batch_ids": [],
        "status": "new",
        "refusals": 0,
        "failures": 0,
        "not_before": 0.0,
        "counts": [0, 0, 0],
        "retried": 0,
        **extra,
    }


def work_root() -> Path:
    return Path(tempfile.gettempdir()) / "airflow_openai_files_shards"


class ShardedJob:
    """
    One sharded batch job of one task instance: plan it, move it on, merge it.

    :param operator: the ``OpenAIBatchOperator`` (its hook, log, arguments).
    :param context: the task's context (task key, try number, task state store).
    :param state: the job's state from an earlier step (the trigger's event), if any.
    """

    def __init__(self, operator: Any, context: Any, state: dict[str, Any] | None = None) -> None:
        self.op = operator
        self.hook = operator.hook
        self.log = operator.log
        self.context = context
        self.record = _resume.TaskRecord(context, "shards")
        self.task_key = _resume.task_key(context)
        self.state: dict[str, Any] = state or self.record.get("job") or {}

    # -- planning ---------------------------------------------------------------------------------------------

    def plan(self, split: _shards.SplitResult, work_dir: Path, prefix: str) -> None:
        """Adopt the recorded state of an earlier try (same input), or start a new one; upload every shard."""
        earlier = self.state
        if earlier and earlier.get("fingerprint") != split.fingerprint:
            self.log.warning("The input changed since an earlier try recorded its shards; starting the job anew")
            earlier = {}
        if not earlier:
            self.state = {
                "version": STATE_VERSION,
                "fingerprint": split.fingerprint,
                "prefix": prefix,
                "lines": split.lines,
                "tokens": split.tokens,
                "model": split.model,
                "shards": [
                    new_shard(
                        str(shard.index),
                        1,
                        shard.lines,
                        shard.bytes,
                        shard.tokens,
                        shard.sha256,
                        first_line=shard.first_line,
                    )
                    for shard in split.shards
                ],
            }
        else:
            self.state = earlier
            self.log.info("Try %d: resuming %d shards recorded by an earlier try", self.try_number, len(self.shards))
        if self.try_number > 1:
            adopt_lost_batches(self)
        for shard in self.shards:
            if shard["file_id"] is None:
                path = work_dir / f"shard-{shard['key']}.jsonl"
                self._upload(shard, path, prefix)
        self.save()

    @property
    def try_number(self) -> int:
        return _resume.try_number(self.context)

    @property
    def shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = self.state["shards"]
        return shards

    def save(self) -> None:
        self.record.set("job", self.state)

    def _upload(self, shard: dict[str, Any], path: Path, prefix: str) -> None:
        since = self.op._run_started(self.context) if self.try_number > 1 else None
        created = self.hook.upload_file(
            str(path),
            "batch",
            filename=_shards.shard_name(prefix, shard["key"]),
            validate=False,
            reconcile_since=since,
            expires_after_seconds=self.op._input_expiry(),
        )
        shard["file_id"] = created["id"]
        shard["status"] = "queued"
        self.save()
        message = "Shard %s: %d requests, %d bytes, ~%d tokens uploaded as %s"
        self.log.info(message, shard["key"], shard["lines"], shard["bytes"], shard["tokens"], created["id"])

    # -- moving on --------------------------------------------------------------------------------------------

    def running(self) -> list[dict[str, Any]]:
        return [shard for shard in self.shards if shard["status"] == "running"]

    def step(self, work_dir: Path, batches: dict[str, dict[str, Any]] | None = None) -> float | None:
        """
        Refresh the running shards, collect the ended ones, submit what is admitted.

        :param batches: Batch objects already fetched (the trigger's event); the others are fetched here.
        :return: None when every shard is collected, else the unix time to wake up at even if no batch
            changes (a backed-off shard's turn), or ``inf``.
        """
        now = time.time()
        seen = dict(batches or {})
        for shard in self.running():
            batch = seen.get(shard["batch_id"]) or self.hook.get_batch(shard["batch_id"])
            seen[batch["id"]] = batch
            self._judge(shard, batch, now)
        for shard in self.shards:
            if shard["status"] == "ended":
                self._collect(shard, work_dir)
        self._submit(now)
        self.log.info("%s", self.progress(seen))
        if all(shard["status"] == "collected" for shard in self.shards):
            return None
        # Only a backed-off shard wakes the job by time; one waiting for room waits for a batch to end.
        backed_off = [s["not_before"] for s in self.shards if s["status"] == "queued" and s["not_before"] > now]
        return min(backed_off) if backed_off else float("inf")

    def progress(self, batches: dict[str, dict[str, Any]]) -> str:
        in_flight = [batches.get(shard["batch_id"]) or {"id": shard["batch_id"]} for shard in self.running()]
        finished = [shard for shard in self.shards if shard["status"] in ("ended", "collected")]
        answered = (sum(s["counts"][1] for s in finished), sum(s["counts"][2] - s["retried"] for s in finished))
        return describe_shards(in_flight, answered, self.state["lines"], len(self.shards), len(finished))

    def _judge(self, shard: dict[str, Any], batch: dict[str, Any], now: float) -> None:
        status = batch.get("status")
        if status not in TERMINAL:
            return
        key = shard["key"]
        if status == "failed":
            shard["batch_id"] = None
            shard["status"] = "queued"
            if is_token_refusal(batch):
                shard["refusals"] += 1
                wait = backoff_seconds(shard["refusals"], self.op.poll_interval, self.op._backoff_cap())
                self.log.warning(
                    "Shard %s: batch %s refused (token_limit_exceeded, refusal %d); back in the queue for %.0fs",
                    key,
                    batch["id"],
                    shard["refusals"],
                    wait,
                )
            else:
                shard["failures"] += 1
                if shard["failures"] >= self.op.max_line_attempts:
                    self.save()
                    raise AirflowFailException(
                        f"{self.op.task_id}: shard {key}: batch {batch['id']} failed {shard['failures']} times, "
                        f"the last time with: {batch_errors(batch)}"
                    )
                wait = backoff_seconds(shard["failures"], self.op.poll_interval, self.op._backoff_cap())
                self.log.warning(
                    "Shard %s: batch %s failed (%s); back in the queue for %.0fs",
                    key,
                    batch["id"],
                    batch_errors(batch),
                    wait,
                )
            shard["not_before"] = now + wait
        else:
            total, completed, failed = request_counts(batch)
            shard.update(
                status="ended",
                batch_status=status,
                counts=[total, completed, failed],
                output_file_id=batch.get("output_file_id"),
                error_file_id=batch.get("error_file_id"),
            )
            message = "Shard %s: batch %s ended %s: %d of %d requests answered, %d failed"
            self.log.info(message, key, batch["id"], status, completed, total, failed)
        self.save()

    def _collect(self, shard: dict[str, Any], work_dir: Path) -> None:
        """Send the retryable error lines of an ended shard again, as a new shard (until max_line_attempts)."""
        retry: set[str] = set()
        if shard.get("error_file_id") and shard["attempt"] < self.op.max_line_attempts:
            errors = work_dir / f"errors-{shard['key']}.jsonl"
            self.hook.download_file(shard["error_file_id"], str(errors), overwrite=True)
            for _, line in _merge.iter_result_lines(errors):
                if is_retryable_line(line):
                    retry.add(str(line.get("custom_id")))
            errors.unlink(missing_ok=True)
        if retry:
            source = work_dir / f"shard-{shard['key']}.jsonl"
            if not source.exists():
                self.hook.download_file(shard["file_id"], str(source), overwrite=True)
            root = shard["key"].split("r")[0]
            key = f"{root}r{shard['attempt'] + 1}"
            target = work_dir / f"shard-{key}.jsonl"
            lines, size, tokens = _merge.write_subset(source, retry, target)
            sha256 = _shards.file_sha256(target)
            child = new_shard(key, shard["attempt"] + 1, lines, size, tokens, sha256, parent=shard["key"])
            self.log.warning(
                "Shard %s: %d lines failed with a retryable error (429, 5xx, timeout, expired); sending them "
                "again as shard %s (attempt %d of %d)",
                shard["key"],
                lines,
                key,
                child["attempt"],
                self.op.max_line_attempts,
            )
            self.shards.append(child)
            shard["retried"] = lines
            self._upload(child, target, self.state["prefix"])
        shard["status"] = "collected"
        self.save()

    def _submit(self, now: float) -> None:
        running = self.running()
        queued = [s for s in self.shards if s["status"] == "queued" and s["not_before"] <= now]
        chosen = admit(
            [(s["key"], s["tokens"]) for s in queued],
            sum(s["tokens"] for s in running),
            len(running),
            max_enqueued_tokens=self.op.max_enqueued_tokens,
            max_concurrent_batches=self.op.max_concurrent_batches,
        )
        by_key = {s["key"]: s for s in queued}
        for key in chosen:
            shard = by_key[key]
            if adopt_lost_batch(self, shard):
                continue
            metadata = dict(self.op.metadata or {})
            if self.task_key:
                metadata[_resume.TASK_KEY_METADATA] = self.task_key
            metadata[SHARD_METADATA] = key
            self.hook.wait_for_input_file(shard["file_id"])
            batch = self.hook.create_batch(
                shard["file_id"],
                self.op._endpoint,
                completion_window=self.op.completion_window,
                metadata=metadata,
                output_expires_after_seconds=self.op._output_expiry(),
            )
            shard["batch_id"] = batch["id"]
            shard["batch_ids"].append(batch["id"])
            shard["status"] = "running"
            self.save()
            message = "Shard %s: batch %s submitted (%d requests, ~%d tokens)"
            self.log.info(message, key, batch["id"], shard["lines"], shard["tokens"])

    def merge(self, work_dir: Path, index_path: Path) -> dict[str, Any]:
        """Merge every shard's results into the destinations, in input order; return the task's summary."""
        return finish_job(self, work_dir, index_path)

    def cancel_running(self) -> list[str]:
        return cancel_running(self)


def adopt_lost_batches(job: ShardedJob) -> None:
    """Batches an earlier try created but did not record (killed in between): found by their metadata."""
    if not job.task_key:
        return
    since = job.op._run_started(job.context)
    horizon = None if since is None else since - 600
    found: dict[str, dict[str, Any]] = {}
    for batch in job.hook.list_batches(page_size=100):
        if horizon is not None and int(batch.get("created_at") or 0) < horizon:
            break
        metadata = batch.get("metadata") or {}
        if metadata.get(_resume.TASK_KEY_METADATA) != job.task_key or SHARD_METADATA not in metadata:
            continue
        found.setdefault(str(metadata[SHARD_METADATA]), batch)  # newest first: keep the newest per shard
    known = {shard["key"]: shard for shard in job.shards}
    # Shards not planned yet (retries of failed lines, re-derived later): adopted when their turn comes.
    job.state["lost"] = {key: batch["id"] for key, batch in found.items() if key not in known}
    for shard in job.shards:
        batch = found.get(shard["key"])
        if batch is None or batch["id"] in shard["batch_ids"] or shard["status"] not in ("new", "queued"):
            continue
        job.log.warning(
            "Shard %s: adopting batch %s (%s) created by an earlier try that did not record it",
            shard["key"],
            batch["id"],
            batch.get("status"),
        )
        shard["batch_ids"].append(batch["id"])
        shard["batch_id"] = batch["id"]
        shard["status"] = "running"
        if shard["file_id"] is None:
            shard["file_id"] = batch.get("input_file_id")
    job.save()


def adopt_lost_batch(job: ShardedJob, shard: dict[str, Any]) -> bool:
    """A shard planned after a retry started (failed lines sent again) whose batch an earlier try created."""
    lost = (job.state.get("lost") or {}).pop(shard["key"], None)
    if lost is None or lost in shard["batch_ids"]:
        return False
    message = "Shard %s: adopting batch %s created by an earlier try that did not record it"
    job.log.warning(message, shard["key"], lost)
    shard.update(batch_id=lost, status="running")
    shard["batch_ids"].append(lost)
    job.save()
    return True


def cancel_running(job: ShardedJob) -> list[str]:
    """Cancel the job's in-flight batches (a kill or a timeout); return their ids."""
    cancelled = []
    for shard in job.running():
        try:
            job.hook.cancel_batch(shard["batch_id"])
            cancelled.append(shard["batch_id"])
        except Exception as err:  # the kill or timeout goes on; say what is left running
            job.log.warning("Could not cancel batch %s (%s); it keeps running", shard["batch_id"], err)
    return cancelled


# -- the end ----------------------------------------------------------------------------------------------


def finish_job(job: ShardedJob, work_dir: Path, index_path: Path) -> dict[str, Any]:
    """Merge every shard's results into the destinations, in input order; apply the failure policy; return
    the task's summary (XCom)."""
    merger = _merge.ResultMerger(index_path, work_dir / "spool.jsonl")
    try:
        for shard in job.shards:
            for kind, file_key in ((_merge.OUTPUT, "output_file_id"), (_merge.ERROR, "error_file_id")):
                file_id = shard.get(file_key)
                if not file_id:
                    continue
                local = work_dir / f"result-{shard['key']}-{kind}.jsonl"
                job.hook.download_file(file_id, str(local), overwrite=True)
                skip = is_retryable_line if (kind == _merge.ERROR and shard["retried"]) else None
                merger.add_file(local, kind, skip)
                local.unlink(missing_ok=True)
        missing, examples = merger.missing()
        output_path = _write(job, merger, _merge.OUTPUT, job.op.output_destination)
        error_path = _write(job, merger, _merge.ERROR, job.op.error_destination)
        answered, errors = merger.counts
        usage = dict(zip(("input_tokens", "output_tokens", "cached_tokens"), merger.usage, strict=True))
        duplicates = merger.duplicates
    finally:
        merger.close()
    total = int(job.state["lines"])
    batch_ids = [batch_id for shard in job.shards for batch_id in shard["batch_ids"]]
    summary: dict[str, Any] = {
        "batch_id": None,
        "batch_ids": batch_ids,
        "status": "completed",
        "request_counts": {"total": total, "completed": answered, "failed": errors},
        "input_file_id": None,
        "output_file_id": None,
        "error_file_id": None,
        "output_path": output_path,
        "error_path": error_path,
        "usage": usage,
        "order": "input",
        "shards": [
            {
                "key": shard["key"],
                "attempt": shard["attempt"],
                "batch_id": shard["batch_id"],
                "batch_ids": shard["batch_ids"],
                "status": shard.get("batch_status"),
                "request_counts": dict(zip(("total", "completed", "failed"), shard["counts"], strict=True)),
                "retried": shard["retried"],
                "input_file_id": shard["file_id"],
                "output_file_id": shard.get("output_file_id"),
                "error_file_id": shard.get("error_file_id"),
                "estimated_tokens": shard["tokens"],
            }
            for shard in job.shards
        ],
    }
    job.log.info(
        "Job of %d requests in %d batches: %d answered, %d in the error file, %d without a result line; usage %s",
        total,
        len(batch_ids),
        answered,
        errors,
        missing,
        json.dumps(usage),
    )
    if duplicates:
        job.log.warning("%d result lines answered a custom_id already answered; the first answer was kept", duplicates)
    unanswered = errors + missing
    allowed = job.op._allowed_failures(total)
    if unanswered > allowed:
        where = f"; see {error_path}" if error_path else ""
        lost = f" ({missing} without any result line, e.g. {', '.join(examples)})" if missing else ""
        raise AirflowFailException(
            f"{job.op.task_id}: the job ended with {unanswered} of {total} requests without an answer{lost}, "
            f"more than max_failed_requests={job.op.max_failed_requests!r} allows ({allowed}){where}"
        )
    return summary


def _write(job: ShardedJob, merger: _merge.ResultMerger, kind: int, destination: Any) -> str | None:
    from airflow_openai_files.transfer.destinations import Destination

    if destination is None or destination == "":
        merger.count_only(kind)
        return None
    target = Destination(destination, overwrite=job.op.overwrite, temp_key=job.task_key)
    target.check()
    try:
        with target.open_temp() as handle:
            merger.write_kind(kind, handle)
        target.commit()
    finally:
        target.discard()
    return target.display
