"""A batch job larger than one batch under dag.test(): run by tests/integration/dags/test_sharded_batch.py.

The input (written by the first task) holds 35 requests; ``max_batch_lines=10`` makes four shards, the
emulator's enqueued-token limit admits two at a time, and the operator waits in the triggerer.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_openai_files.operators import OpenAIBatchOperator

STAGING = Path(os.environ.get("OPENAI_FILES_STAGING", "/tmp/openai-sharded").removeprefix("file://"))
REQUESTS = 35

with DAG("openai_sharded_batch", schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:

    @task
    def write_requests() -> str:
        STAGING.mkdir(parents=True, exist_ok=True)
        path = STAGING / "requests.jsonl"
        with open(path, "w") as out:
            for i in range(REQUESTS):
                body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Question {i}"}]}
                line = {"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
                out.write(json.dumps(line) + "\n")
        return str(path)

    OpenAIBatchOperator(
        task_id="score",
        input_file=write_requests(),
        endpoint="/v1/chat/completions",
        output_destination=str(STAGING / "results.jsonl"),
        error_destination=str(STAGING / "errors.jsonl"),
        max_batch_lines=10,
        max_enqueued_tokens=int(os.environ.get("OPENAI_SHARDS_BUDGET", "1000")),
        deferrable=True,
        poll_interval=0.2,
    )
