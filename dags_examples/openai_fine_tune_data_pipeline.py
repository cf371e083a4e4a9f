"""
### Daily fine-tuning data for the support assistant

Every day this pipeline turns the well-rated support conversations into an OpenAI fine-tuning file:

1. **build_training_file**: selects the conversations for the logical date from
   `data/support_tickets.csv` (shipped next to this file; in production, a query on the ticket
   store) that customers rated 4 or 5, and writes them as chat-format JSONL.
2. **upload_training_file**: checks the JSONL (format, at least 10 examples) before sending a
   byte, then streams it to the Files API with purpose `fine-tune`.
3. **wait_until_processed**: a deferrable sensor; the wait happens in the triggerer, not in a
   worker slot. A file that OpenAI rejects fails the run with OpenAI's reason.
4. **download_for_audit** and **verify_round_trip**: fetch the stored copy back and compare it
   byte for byte with what was built.
5. **apply_retention**: deletes this pipeline's training files older than `params.retention`,
   so the project's storage does not grow without bound.

The same DAG runs against the real API or the local emulator: only the `openai_files_default`
connection differs. Staging files go to `$OPENAI_FILES_STAGING` (any ObjectStoragePath URL, e.g.
`s3://aws_default@bucket/openai`; a local temporary directory by default, fine for one machine).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import ObjectStoragePath, dag, get_current_context, task

from airflow_openai_files.operators import (
    OpenAIDownloadFileOperator,
    OpenAIFilesCleanupOperator,
    OpenAIUploadFileOperator,
)
from airflow_openai_files.sensors import OpenAIFileSensor

TICKETS = Path(__file__).parent / "data" / "support_tickets.csv"
SYSTEM_PROMPT = "You are Acme's support assistant. Answer briefly, kindly and precisely."
EXAMPLES_PER_DAY = 20
MIN_CSAT = 4
FILE_PREFIX = "support_conversations_"


def staging_root() -> ObjectStoragePath:
    default = f"file://{Path(tempfile.gettempdir()) / 'openai_files_staging'}"
    return ObjectStoragePath(os.environ.get("OPENAI_FILES_STAGING", default))


def conversations_for(day: date) -> list[dict[str, str]]:
    """The well-rated conversations of ``day`` (the sample data rotates by date to stand in for a query)."""
    with TICKETS.open(encoding="utf-8", newline="") as handle:
        good = [row for row in csv.DictReader(handle) if int(row["csat"]) >= MIN_CSAT]
    start = day.toordinal() % len(good)
    return [good[(start + i) % len(good)] for i in range(min(EXAMPLES_PER_DAY, len(good)))]


def sha256_of(path: ObjectStoragePath) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@dag(
    dag_id="openai_fine_tune_data_pipeline",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={"retention": "7d"},
    tags=["openai", "fine-tuning"],
    doc_md=__doc__,
)
def openai_fine_tune_data_pipeline() -> None:
    @task
    def build_training_file() -> dict[str, Any]:
        context = get_current_context()
        logical = context.get("logical_date") or context["dag_run"].run_after
        day = logical.date()
        folder = staging_root() / "fine_tune"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{FILE_PREFIX}{day.isoformat()}.jsonl"
        rows = conversations_for(day)
        with target.open("wb") as out:
            for row in rows:
                example = {
                    "messages": [
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": row["customer_message"]},
                        {"role": "assistant", "content": row["agent_reply"]},
                    ]
                }
                out.write(json.dumps(example, ensure_ascii=False).encode("utf-8") + b"\n")
        print(f"Wrote {len(rows)} examples for {day} to {target}")
        return {
            "training_file": str(target),
            "audit_copy": str(folder / f"{FILE_PREFIX}{day.isoformat()}.downloaded.jsonl"),
            "examples": len(rows),
        }

    built = build_training_file()

    upload = OpenAIUploadFileOperator(
        task_id="upload_training_file",
        file_path=built["training_file"],
        purpose="fine-tune",
        validate=True,
    )

    wait = OpenAIFileSensor(
        task_id="wait_until_processed",
        file_id=upload.output["id"],
        deferrable=True,
        poke_interval=5,
        timeout=60 * 60,
    )

    download = OpenAIDownloadFileOperator(
        task_id="download_for_audit",
        file_id=upload.output["id"],
        destination=built["audit_copy"],
        overwrite=True,
    )

    @task
    def verify_round_trip(build: dict[str, Any], downloaded: str, uploaded: dict[str, Any]) -> dict[str, Any]:
        local_sha, local_size = sha256_of(ObjectStoragePath(build["training_file"]))
        remote_sha, remote_size = sha256_of(ObjectStoragePath(downloaded))
        if (local_sha, local_size) != (remote_sha, remote_size) or uploaded["bytes"] != local_size:
            raise ValueError(
                f"{uploaded['id']} differs from {build['training_file']}: {remote_size} bytes (sha256 {remote_sha}) "
                f"downloaded, {local_size} bytes (sha256 {local_sha}) built, {uploaded['bytes']} bytes reported"
            )
        print(f"{uploaded['id']} matches the built file byte for byte: {local_size} bytes, sha256 {local_sha}")
        return {"file_id": uploaded["id"], "bytes": local_size, "sha256": local_sha, "examples": build["examples"]}

    verified = verify_round_trip(built, download.output, upload.output)

    retention = OpenAIFilesCleanupOperator(
        task_id="apply_retention",
        purpose="fine-tune",
        filename_glob=f"{FILE_PREFIX}*.jsonl",
        older_than="{{ params.retention }}",
    )

    built >> upload >> wait >> download >> verified >> retention


fine_tune_dag = openai_fine_tune_data_pipeline()

if __name__ == "__main__":
    fine_tune_dag.test()
