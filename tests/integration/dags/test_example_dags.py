"""Both example DAGs, end to end with ``dag.test()`` against the emulator (deferral included)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_db import airflow_env
from tests.support.connections import conn_env_var
from tests.support.task_helpers import fine_tune_lines

REPO = Path(__file__).resolve().parents[3]
DAGS = REPO / "dags_examples"
RUNNER = Path(__file__).with_name("run_dag_test.py")
DAY = 86400


# A short processing delay: the sensor's first check sees "uploaded" and defers.
pytestmark = [pytest.mark.openai_files_emulator(processing_delay=1.0), pytest.mark.slow]


def run_dag(home: Path, emulator: Any, staging: Path, dag_file: str, variable: str, day: str) -> dict[str, Any]:
    env = airflow_env(home)
    env["OPENAI_FILES_STAGING"] = f"file://{staging}"
    env[conn_env_var()] = emulator.airflow_connection()
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(DAGS / dag_file), variable, day],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["log"] = done.stdout + done.stderr
    return report


def xcom(report: dict[str, Any], task_id: str) -> Any:
    value = report["xcom"][task_id]
    return json.loads(value) if isinstance(value, str) and value[:1] in '[{"' else value


def test_fine_tune_pipeline(airflow_home: Path, openai_files_emulator: Any, tmp_path: Path) -> None:
    import hashlib
    import sqlite3

    from airflow_openai_files.hooks import OpenAIFilesHook

    # An earlier day's training file, 8 days old: retention must remove it. The emulator's clock only moves
    # forward and retention compares with the worker's clock, so the file's creation time is set back in
    # the emulator's store (the arrangement of "uploaded 8 days ago").
    os.environ["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"] = json.dumps(
        {"conn_type": "openai_files", "host": openai_files_emulator.base_url, "password": openai_files_emulator.api_key}
    )
    try:
        old = OpenAIFilesHook().upload_file(
            io.BytesIO(fine_tune_lines()), "fine-tune", filename="support_conversations_2024-05-09.jsonl"
        )
        unrelated = OpenAIFilesHook().upload_file(io.BytesIO(fine_tune_lines()), "fine-tune", filename="other.jsonl")
    finally:
        del os.environ["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"]
    store = sqlite3.connect(openai_files_emulator.data_dir / "emulator.sqlite3")
    with store:
        for file_id in (old["id"], unrelated["id"]):
            store.execute(
                "UPDATE files SET created_at = created_at - ?, created_ts = created_ts - ? WHERE id = ?",
                (8 * DAY, 8 * DAY, file_id),
            )
    store.close()

    staging = tmp_path / "staging"
    report = run_dag(
        airflow_home, openai_files_emulator, staging, "openai_fine_tune_data_pipeline.py", "fine_tune_dag", "2024-05-17"
    )
    assert report["state"] == "success", (report["tasks"], report["log"][-6000:])
    assert set(report["tasks"].values()) == {"success"}, report["tasks"]
    assert set(report["tasks"]) == {
        "build_datasets",
        "validate_datasets",
        "upload_training_file",
        "upload_validation_file",
        "audit_uploads",
        "fine_tune",
        "publish_model",
        "apply_retention",
    }
    # the job was waited for in the triggerer (Airflow 3.1's dag.test() writes task logs to files only)
    assert "Deferring" in report["log"] + report.get("task_logs", "")

    # What was built is what was uploaded: recorded sha256, lines and bytes, no download of fine-tune files.
    files = {f["id"]: f for f in openai_files_emulator.files()}
    built = staging / "fine_tune" / "support_conversations_2024-05-17.jsonl"
    audit = xcom(report, "audit_uploads")
    training = audit["training"]
    assert files[training["file_id"]]["filename"] == built.name
    assert openai_files_emulator.content(training["file_id"]) == built.read_bytes()
    assert training["sha256"] == hashlib.sha256(built.read_bytes()).hexdigest()
    assert training["lines"] == 20 and training["bytes"] == built.stat().st_size
    assert audit["validation"]["lines"] == 10
    assert json.loads((staging / "fine_tune" / "audit" / "2024-05-17.json").read_text()) == audit
    downloaded = {
        p.split("/")[3] for m, p, _ in openai_files_emulator.request_log() if m == "GET" and p.endswith("/content")
    }

    # The job: one, on the uploaded files, succeeded; results CSV landed in staging; metrics = its last row.
    (job,) = openai_files_emulator.fine_tuning_jobs()
    assert job["status"] == "succeeded"
    assert (job["training_file"], job["validation_file"]) == (training["file_id"], audit["validation"]["file_id"])
    result = xcom(report, "fine_tune")
    assert result["job_id"] == job["id"] and result["fine_tuned_model"] == job["fine_tuned_model"]
    assert (
        result["fine_tuned_model"].startswith("ft:gpt-4.1-mini-2025-04-14:")
        and ":support-20240517:" in result["fine_tuned_model"]
    )
    landed = staging / "fine_tune" / "results" / "2024-05-17.csv"
    assert result["results_path"] == str(landed)
    (results_file,) = job["result_files"]
    assert files[results_file]["purpose"] == "fine-tune-results"
    assert downloaded == {results_file}  # only the service-created results: fine-tune files cannot be downloaded
    assert landed.read_bytes() == openai_files_emulator.content(results_file)
    header, *_, last = landed.read_text().strip().splitlines()
    assert [str(result["metrics"][k]) for k in header.split(",")] == last.split(",")
    assert result["metrics"]["valid_loss"] is not None

    # The model name was published as an Asset event for the evaluation DAG.
    assert xcom(report, "publish_model") == result["fine_tuned_model"]
    db = sqlite3.connect(airflow_home / "airflow.db")
    try:
        extras = [
            json.loads(extra)
            for (extra,) in db.execute(
                "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ?",
                ("support_assistant_fine_tuned_model",),
            )
        ]
    finally:
        db.close()
    assert {"fine_tuned_model": result["fine_tuned_model"], "job_id": job["id"]}.items() <= extras[-1].items()

    assert old["id"] not in files  # removed by retention
    assert unrelated["id"] in files  # other pipelines' files are left alone
    assert xcom(report, "apply_retention") == [old["id"]]


def test_batch_input_files(airflow_home: Path, openai_files_emulator: Any, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    report = run_dag(
        airflow_home, openai_files_emulator, staging, "openai_batch_input_files.py", "batch_dag", "2024-05-18"
    )
    assert report["state"] == "success", report["tasks"]
    assert set(report["tasks"].values()) == {"success"}, report["tasks"]

    uploaded = xcom(report, "upload_batch_input")
    assert uploaded["purpose"] == "batch"
    assert uploaded["expires_at"] == uploaded["created_at"] + 7 * DAY
    assert xcom(report, "delete_batch_input") == [uploaded["id"]]
    assert xcom(report, "check_input_copy") == 36
    assert openai_files_emulator.files() == []  # deleted at the end
    requests = openai_files_emulator.request_log()
    assert ("DELETE", f"/v1/files/{uploaded['id']}", 200) in requests
    assert sum(1 for method, path, _ in requests if method == "POST" and path == "/v1/files") == 1


def test_vector_store_sync(airflow_home: Path, openai_files_emulator: Any, tmp_path: Path) -> None:
    """Two daily runs: the first uploads the knowledge base, the second finds nothing changed and uploads
    nothing; both smoke tests find the refund policy first."""
    emulator = openai_files_emulator
    staging = tmp_path / "staging"
    documents = sorted(p for p in (DAGS / "data" / "knowledge_base").rglob("*") if p.is_file())
    first = run_dag(
        airflow_home, emulator, staging, "openai_vector_store_sync.py", "vector_store_sync_dag", "2024-05-17"
    )
    assert first["state"] == "success", (first["tasks"], first["log"][-6000:])
    assert set(first["tasks"].values()) == {"success"}, first["tasks"]
    assert "Deferring" in first["log"] + first.get("task_logs", "")
    summary = xcom(first, "sync_knowledge_base")
    assert (summary["added"], summary["unchanged"], summary["failed"]) == (len(documents), 0, [])
    assert summary["bytes"] == sum(p.stat().st_size for p in documents)
    assert xcom(first, "smoke_test")["best_hit"] == "policies/refunds.md"

    uploads = sum(1 for method, path, _ in emulator.request_log() if method == "POST" and path == "/v1/files")
    second = run_dag(
        airflow_home, emulator, staging, "openai_vector_store_sync.py", "vector_store_sync_dag", "2024-05-18"
    )
    assert second["state"] == "success", (second["tasks"], second["log"][-6000:])
    again = xcom(second, "sync_knowledge_base")
    assert again["vector_store_id"] == summary["vector_store_id"]
    assert (again["added"], again["replaced"], again["removed"], again["unchanged"]) == (0, 0, 0, len(documents))
    assert sum(1 for method, path, _ in emulator.request_log() if method == "POST" and path == "/v1/files") == uploads
    (store,) = emulator.vector_stores()
    assert store["file_counts"]["completed"] == len(documents) and store["name"] == "support-knowledge-base"
