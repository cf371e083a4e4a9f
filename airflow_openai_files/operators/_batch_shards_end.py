"""The end of a sharded batch job: merge the results, apply the failure policy, build the task's summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.resources.batches import is_retryable_line
from airflow_openai_files.transfer import merge as _merge

if TYPE_CHECKING:
    from airflow_openai_files.operators._batch_shards import ShardedJob


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
