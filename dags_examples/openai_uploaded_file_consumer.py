"""
### A DAG scheduled on an uploaded file (Airflow Assets)

Two DAGs in one file:

1. **openai_publish_reference_notes** uploads `data/support_tickets.csv` with purpose
   `user_data` and lists the Asset `openai://files/reference-notes` in its `outlets`. The upload
   operator attaches what it uploaded to the Asset event: `file_id`, `bytes`, `sha256` and
   `purpose`.
2. **openai_reference_notes_consumer** is scheduled on that Asset: it runs after every successful
   upload and reads the file id from the triggering event (no XCom across DAGs, no file listing),
   then checks the file on the service.

Runs unchanged against the real API or the local emulator: only the `openai_files_default`
connection differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Asset, dag, get_current_context, task

from airflow_openai_files.operators import OpenAIUploadFileOperator

REFERENCE_NOTES = Asset("openai://files/reference-notes")
NOTES = Path(__file__).parent / "data" / "support_tickets.csv"


@dag(
    dag_id="openai_publish_reference_notes",
    schedule=None,
    start_date=pendulum.datetime(2024, 5, 1, tz="UTC"),
    catchup=False,
    tags=["openai", "files", "assets"],
)
def publish_dag() -> None:
    OpenAIUploadFileOperator(
        task_id="upload_reference_notes",
        file_path=str(NOTES),
        purpose="user_data",
        filename="reference_notes.csv",
        outlets=[REFERENCE_NOTES],
    )


@dag(
    dag_id="openai_reference_notes_consumer",
    schedule=[REFERENCE_NOTES],
    start_date=pendulum.datetime(2024, 5, 1, tz="UTC"),
    catchup=False,
    tags=["openai", "files", "assets"],
)
def consumer_dag() -> None:
    @task
    def check_uploaded_file() -> dict[str, Any]:
        from airflow_openai_files.hooks import OpenAIFilesHook

        events = get_current_context()["triggering_asset_events"][REFERENCE_NOTES]
        extra = events[-1].extra  # the newest upload
        file = OpenAIFilesHook().get_file(extra["file_id"])
        if file["bytes"] != extra["bytes"]:
            raise ValueError(f"{extra['file_id']} has {file['bytes']} bytes, the event said {extra['bytes']}")
        return {"file_id": file["id"], "bytes": file["bytes"], "sha256": extra["sha256"]}

    check_uploaded_file()


publish = publish_dag()
consume = consumer_dag()
