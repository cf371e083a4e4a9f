"""
### Daily fine-tuning of the support assistant

Every day this pipeline turns the well-rated support conversations into a fine-tuned model:

1. **build_datasets**: selects the conversations for the logical date from `data/support_tickets.csv`
   (shipped next to this file; in production, a query on the ticket store) that customers rated 4 or
   5, and writes a chat-format training JSONL and a held-out validation JSONL to staging, recording
   the sha256, byte count and line count of each.
2. **validate_datasets**: checks both files for supervised fine-tuning (JSON per line, a `messages`
   list with an `assistant` answer, at least ten training examples) before anything is sent.
3. **upload_training_file** / **upload_validation_file**: stream the files to the Files API with
   purpose `fine-tune`; a retried task reuses the file an earlier try uploaded.
4. **audit_uploads**: the service does not let anyone download `fine-tune` files back, so the audit
   record is what was built (sha256, lines, bytes) next to the File objects the service returned;
   the byte counts must match. The record is written to staging.
5. **fine_tune**: creates the fine-tuning job and waits for it in the triggerer (no worker slot
   held), logging status changes and step metrics; a failed job fails the task once with the job's
   error; a retried task resumes the same job. The `fine-tune-results` CSV lands in staging and the
   final metrics are returned.
6. **publish_model**: emits an event on the `support_assistant_fine_tuned_model` Asset carrying the
   fine-tuned model name and metrics; the `openai_fine_tuned_model_evaluation` DAG runs on it.
7. **apply_retention**: deletes this pipeline's training and validation files older than
   `params.retention`, so the project's storage stays bounded.

The same DAG runs against OpenAI, Azure OpenAI, another OpenAI-shaped service or the local emulator:
only the `openai_files_default` connection differs. Note that api.openai.com accepts no new
fine-tuning jobs from 2027-01-06 (earlier for organisations without recent fine-tuning); the job
step then fails at once saying so. Staging goes to `$OPENAI_FILES_STAGING` (any ObjectStoragePath URL,
e.g. `s3://aws_default@bucket/openai`; a local temporary directory by default).
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Asset, ObjectStoragePath, dag, get_current_context, task

from airflow_openai_files.operators import (
    OpenAIFilesCleanupOperator,
    OpenAIFineTuningJobOperator,
    OpenAIUploadFileOperator,
)
from airflow_openai_files.transfer.staging import staging_root

TICKETS = Path(__file__).parent / "data" / "support_tickets.csv"
SYSTEM_PROMPT = "You are Acme's support assistant. Answer briefly, kindly and precisely."
TRAINING_EXAMPLES = 20
VALIDATION_EXAMPLES = 10
MIN_CSAT = 4
FILE_PREFIX = "support_conversations_"
#: The Asset the downstream evaluation DAG is scheduled on; each event carries the model name.
FINE_TUNED_MODEL = Asset(name="support_assistant_fine_tuned_model")


def conversations_for(day: date) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The well-rated conversations of ``day``, split into training and held-out validation examples
    (the sample data rotates by date to stand in for a query)."""
    with TICKETS.open(encoding="utf-8", newline="") as handle:
        good = [row for row in csv.DictReader(handle) if int(row["csat"]) >= MIN_CSAT]
    start = day.toordinal() % len(good)
    rotated = [good[(start + i) % len(good)] for i in range(len(good))]
    return rotated[:TRAINING_EXAMPLES], rotated[TRAINING_EXAMPLES : TRAINING_EXAMPLES + VALIDATION_EXAMPLES]


def write_jsonl(target: ObjectStoragePath, rows: list[dict[str, str]]) -> dict[str, Any]:
    """Write chat examples; return what an auditor needs: path, sha256, bytes, lines."""
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        for row in rows:
            example = {
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": row["customer_message"]},
                    {"role": "assistant", "content": row["agent_reply"]},
                ]
            }
            line = json.dumps(example, ensure_ascii=False).encode("utf-8") + b"\n"
            out.write(line)
            digest.update(line)
            size += len(line)
    return {"path": str(target), "sha256": digest.hexdigest(), "bytes": size, "lines": len(rows)}


@dag(
    dag_id="openai_fine_tune_data_pipeline",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={"retention": "7d", "base_model": "gpt-4.1-mini-2025-04-14"},
    tags=["openai", "fine-tuning"],
    doc_md=__doc__,
)
def openai_fine_tune_data_pipeline() -> None:
    @task
    def build_datasets() -> dict[str, Any]:
        context = get_current_context()
        logical = context.get("logical_date") or context["dag_run"].run_after
        day = logical.date()
        folder = staging_root() / "fine_tune"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results").mkdir(parents=True, exist_ok=True)  # where fine_tune lands the results CSV
        training, validation = conversations_for(day)
        built: dict[str, Any] = {
            "day": day.isoformat(),
            "training": write_jsonl(folder / f"{FILE_PREFIX}{day.isoformat()}.jsonl", training),
            "validation": write_jsonl(folder / f"{FILE_PREFIX}{day.isoformat()}.validation.jsonl", validation),
        }
        # Top-level keys are XComs of their own (``built["training_path"]`` below); nested ones are not.
        built["training_path"] = built["training"]["path"]
        built["validation_path"] = built["validation"]["path"]
        built["results_destination"] = str(folder / "results" / f"{day.isoformat()}.csv")
        print(f"Built {len(training)} training and {len(validation)} validation examples for {day} in {folder}")
        return built

    @task
    def validate_datasets(built: dict[str, Any]) -> None:
        from airflow_openai_files.validation import check_fine_tune_file

        for role in ("training", "validation"):
            path = ObjectStoragePath(built[role]["path"])
            with path.open("rb") as stream:
                check_fine_tune_file(stream, "supervised", name=path.name, role=role)
            print(f"{path.name}: {built[role]['lines']} valid supervised examples")

    built = build_datasets()
    validated = validate_datasets(built)

    upload_training = OpenAIUploadFileOperator(
        task_id="upload_training_file", file_path=built["training_path"], purpose="fine-tune"
    )
    upload_validation = OpenAIUploadFileOperator(
        task_id="upload_validation_file", file_path=built["validation_path"], purpose="fine-tune"
    )

    @task
    def audit_uploads(built: dict[str, Any], training: dict[str, Any], validation: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"day": built["day"]}
        for role, uploaded in (("training", training), ("validation", validation)):
            local = built[role]
            if int(uploaded["bytes"]) != local["bytes"]:
                raise ValueError(
                    f"{uploaded['id']} ({uploaded['filename']}) holds {uploaded['bytes']} bytes; "
                    f"{local['path']} was built with {local['bytes']} bytes (sha256 {local['sha256']})"
                )
            record[role] = {
                "file_id": uploaded["id"],
                "filename": uploaded["filename"],
                "created_at": uploaded["created_at"],
                "bytes": local["bytes"],
                "sha256": local["sha256"],
                "lines": local["lines"],
            }
            print(f"{role}: {uploaded['id']} {local['bytes']} bytes, {local['lines']} lines, sha256 {local['sha256']}")
        target = staging_root() / "fine_tune" / "audit" / f"{built['day']}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(record, indent=2, sort_keys=True))
        return record

    audit = audit_uploads(built, upload_training.output, upload_validation.output)

    fine_tune = OpenAIFineTuningJobOperator(
        task_id="fine_tune",
        training_file=upload_training.output["id"],
        validation_file=upload_validation.output["id"],
        model="{{ params.base_model }}",
        suffix="support-{{ ds_nodash }}",
        metadata={"pipeline": "openai_fine_tune_data_pipeline", "day": "{{ ds }}"},
        results_destination=built["results_destination"],
        overwrite=True,
        deferrable=True,
        poll_interval=5,
        timeout=24 * 3600,
    )

    @task(outlets=[FINE_TUNED_MODEL])
    def publish_model(result: dict[str, Any]) -> str:
        context = get_current_context()
        context["outlet_events"][FINE_TUNED_MODEL].extra = {
            "fine_tuned_model": result["fine_tuned_model"],
            "job_id": result["job_id"],
            "metrics": result["metrics"],
            "results_path": result["results_path"],
        }
        print(f"Published {result['fine_tuned_model']} (job {result['job_id']}); final metrics {result['metrics']}")
        return str(result["fine_tuned_model"])

    retention = OpenAIFilesCleanupOperator(
        task_id="apply_retention",
        purpose="fine-tune",
        filename_glob=f"{FILE_PREFIX}*.jsonl",
        older_than="{{ params.retention }}",
    )

    published = publish_model(fine_tune.output)
    validated >> [upload_training, upload_validation]
    audit >> fine_tune
    published >> retention


fine_tune_dag = openai_fine_tune_data_pipeline()

if __name__ == "__main__":
    fine_tune_dag.test()
