"""Every deterministic error fails its task on try 1, whatever ``retries`` says (issue 12).

Each task has ``retries=2`` and no retry delay. The inputs come from ``OPENAI_FILES_FAIL_FAST_DIR`` (written by
``tests/integration/dags/test_fail_fast.py``). ``control_wrong_port`` is the one error that can heal (a refused connection):
Airflow retries it, so its try number shows that retries do run in this DAG.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import dag

from airflow_openai_files.operators import OpenAIUploadFileOperator

FILES = Path(os.environ.get("OPENAI_FILES_FAIL_FAST_DIR", "/nonexistent"))
RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=0)}


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False, default_args=RETRIES)
def openai_fail_fast() -> None:
    OpenAIUploadFileOperator(task_id="misspelled_purpose", file_path=str(FILES / "ok.txt"), purpose="{{ 'finetune' }}")
    OpenAIUploadFileOperator(task_id="json_fine_tune_file", file_path=str(FILES / "train.json"), purpose="fine-tune")
    OpenAIUploadFileOperator(task_id="five_examples", file_path=str(FILES / "five.jsonl"), purpose="fine-tune")
    OpenAIUploadFileOperator(
        task_id="missing_connection", file_path=str(FILES / "ok.txt"), purpose="user_data", openai_conn_id="no_such"
    )
    OpenAIUploadFileOperator(
        task_id="empty_key", file_path=str(FILES / "ok.txt"), purpose="user_data", openai_conn_id="empty_key"
    )
    OpenAIUploadFileOperator(
        task_id="refused_key_401", file_path=str(FILES / "ok.txt"), purpose="user_data", openai_conn_id="bad_key"
    )
    OpenAIUploadFileOperator(
        task_id="base_url_404", file_path=str(FILES / "ok.txt"), purpose="user_data", openai_conn_id="bad_path"
    )
    OpenAIUploadFileOperator(
        task_id="control_wrong_port", file_path=str(FILES / "ok.txt"), purpose="user_data", openai_conn_id="bad_port"
    )


dag = openai_fail_fast()
