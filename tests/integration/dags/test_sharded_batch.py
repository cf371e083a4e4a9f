"""A job larger than one batch through OpenAIBatchOperator under dag.test(): deferred to the triggerer between
steps, the enqueued-token limit admitting two shards at a time, one merged output in the input's order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.operators._batch_shards import SHARD_METADATA
from airflow_openai_files.transfer.shards import estimate_tokens
from tests.integration.dags.test_example_dags import RUNNER
from tests.support.airflow_db import airflow_env

DAG_FILE = Path(__file__).with_name("dags") / "openai_sharded_batch.py"


def shard_tokens() -> int:
    """The client's estimate for one full shard of the DAG's requests (shards of 10, the longest ids)."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Question 30"}]}
    return 10 * estimate_tokens(body)


pytestmark = [
    pytest.mark.openai_files_emulator(batch_in_progress_seconds=0.5, enqueued_token_limit=2 * shard_tokens()),
    pytest.mark.slow,
]


def test_sharded_job_under_dag_test(airflow_home: Path, openai_files_emulator: Any, tmp_path: Path) -> None:
    env = airflow_env(airflow_home)
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAG_FILE.parent)
    env["OPENAI_FILES_STAGING"] = str(tmp_path / "staging")
    env["OPENAI_SHARDS_BUDGET"] = str(2 * shard_tokens())
    env["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"] = openai_files_emulator.airflow_connection()
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(DAG_FILE), "dag", "2024-06-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["state"] == "success", (report["tasks"], done.stdout[-3000:])
    summary = report["xcom"]["score"]
    summary = json.loads(summary) if isinstance(summary, str) else summary
    assert summary["request_counts"] == {"total": 35, "completed": 35, "failed": 0}
    assert summary["order"] == "input" and len(summary["shards"]) == 4
    batches = openai_files_emulator.batches()
    shards = [(b.get("metadata") or {}).get(SHARD_METADATA) for b in batches]
    assert sorted(shards) == ["0", "1", "2", "3"]  # each shard once: the budget kept the service from refusing
    assert all(b["status"] == "completed" for b in batches)
    assert sorted(summary["batch_ids"]) == sorted(b["id"] for b in batches)
    lines = (tmp_path / "staging" / "results.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["custom_id"] for line in lines] == [f"q{i}" for i in range(35)]
    assert summary["usage"]["input_tokens"] == sum(b["usage"]["input_tokens"] for b in batches)
