"""
### Batch API input files for ticket triage

Prepares the input of an OpenAI Batch job that asks a model to triage every support ticket:

1. **build_batch_input**: one `POST /v1/chat/completions` request per ticket of
   `data/support_tickets.csv` (shipped next to this file), each with a unique `custom_id`.
2. **upload_batch_input**: checks the JSONL (unique `custom_id`, method, url, body; at most
   50,000 requests and 200 MB) before any request, then uploads it with purpose `batch`; the file
   expires on its own after `params.expires_after_seconds` as a safety net.
3. **wait_until_processed**: a deferrable sensor, waiting in the triggerer.
4. **download_input_copy** and **check_input_copy**: the stored copy is fetched back and compared
   with what was built (a batch job would be created from the file id at this point).
5. **delete_batch_input**: the input file is removed once it is no longer needed.

Runs unchanged against the real API or the local emulator: only the `openai_files_default`
connection differs. Staging goes to `$OPENAI_FILES_STAGING` (any ObjectStoragePath URL, e.g.
`s3://aws_default@bucket/openai`); unset, to the local temp dir only under the Local or Sequential
executor or `airflow dags test`, and under any other executor the run refuses to start
(`staging_root()` of `airflow_openai_files.transfer.staging`, so this file works in any DAGs subfolder).
"""

from __future__ import annotations

import csv
import filecmp
import json
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import ObjectStoragePath, dag, get_current_context, task

from airflow_openai_files.operators import (
    OpenAIDeleteFileOperator,
    OpenAIDownloadFileOperator,
    OpenAIUploadFileOperator,
)
from airflow_openai_files.sensors import OpenAIFileSensor
from airflow_openai_files.transfer.staging import staging_root

TICKETS = Path(__file__).parent / "data" / "support_tickets.csv"
MODEL = "gpt-4o-mini"
CATEGORIES = ("billing", "account", "shipping", "product", "returns")
INSTRUCTIONS = (
    "Classify the customer's message into one of: " + ", ".join(CATEGORIES) + ". Answer with the category only."
)


@dag(
    dag_id="openai_batch_input_files",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    params={"expires_after_seconds": 7 * 24 * 3600},
    tags=["openai", "batch"],
    doc_md=__doc__,
)
def openai_batch_input_files() -> None:
    @task
    def build_batch_input() -> dict[str, Any]:
        run_id = get_current_context()["run_id"]
        stamp = "".join(ch if ch.isalnum() else "_" for ch in run_id)
        folder = staging_root() / "batch"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"ticket_triage_{stamp}.jsonl"
        with TICKETS.open(encoding="utf-8", newline="") as handle:
            tickets = list(csv.DictReader(handle))
        with target.open("wb") as out:
            for ticket in tickets:
                request = {
                    "custom_id": f"triage-{ticket['ticket_id']}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": MODEL,
                        "max_tokens": 5,
                        "messages": [
                            {"role": "system", "content": INSTRUCTIONS},
                            {"role": "user", "content": ticket["customer_message"]},
                        ],
                    },
                }
                out.write(json.dumps(request, ensure_ascii=False).encode("utf-8") + b"\n")
        print(f"Wrote {len(tickets)} triage requests to {target}")
        return {
            "batch_input": str(target),
            "input_copy": str(folder / f"ticket_triage_{stamp}.downloaded.jsonl"),
            "requests": len(tickets),
        }

    built = build_batch_input()

    upload = OpenAIUploadFileOperator(
        task_id="upload_batch_input",
        file_path=built["batch_input"],
        purpose="batch",
        expires_after_seconds="{{ params.expires_after_seconds }}",
    )

    wait = OpenAIFileSensor(
        task_id="wait_until_processed",
        file_id=upload.output["id"],
        deferrable=True,
        poke_interval=5,
        timeout=30 * 60,
    )

    download = OpenAIDownloadFileOperator(
        task_id="download_input_copy",
        file_id=upload.output["id"],
        destination=built["input_copy"],
        overwrite=True,
    )

    @task
    def check_input_copy(build: dict[str, Any], copy: str) -> int:
        original, downloaded = ObjectStoragePath(build["batch_input"]), ObjectStoragePath(copy)
        if original.protocol == downloaded.protocol == "file":
            same = filecmp.cmp(original.path, downloaded.path, shallow=False)
        else:
            same = original.read_bytes() == downloaded.read_bytes()
        if not same:
            raise ValueError(f"{copy} differs from {build['batch_input']}")
        print(f"The stored batch input matches the {build['requests']} requests built")
        return int(build["requests"])

    checked = check_input_copy(built, download.output)

    delete = OpenAIDeleteFileOperator(task_id="delete_batch_input", file_id=upload.output["id"])

    built >> upload >> wait >> download >> checked >> delete


batch_dag = openai_batch_input_files()

if __name__ == "__main__":
    batch_dag.test()
