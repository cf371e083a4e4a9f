"""Both example DAGs, end to end with ``dag.test()`` against the emulator (deferral included)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.task_helpers import fine_tune_lines

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags_examples"
RUNNER = Path(__file__).with_name("run_dag_test.py")
DAY = 86400


def airflow_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        PYTHONPATH=str(REPO),
    )
    return env


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow_home")
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env=airflow_env(home), check=True, capture_output=True, timeout=180)
    return home


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Any]:
    from airflow_openai_files.emulator import Emulator

    # A short processing delay: the sensor's first check sees "uploaded" and defers.
    with Emulator(data_dir=tmp_path / "emulator", processing_delay=1.0) as emu:
        yield emu


def run_dag(home: Path, emulator: Any, staging: Path, dag_file: str, variable: str, day: str) -> dict[str, Any]:
    env = airflow_env(home)
    env["OPENAI_FILES_STAGING"] = f"file://{staging}"
    env["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"] = json.dumps(
        {"conn_type": "openai_files", "host": emulator.base_url, "password": emulator.api_key}
    )
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


def test_fine_tune_pipeline(airflow_home: Path, emulator: Any, tmp_path: Path) -> None:
    from airflow_openai_files.hooks import OpenAIFilesHook

    # An earlier day's training file, 8 days old by the emulator's clock: retention must remove it.
    os.environ["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"] = json.dumps(
        {"conn_type": "openai_files", "host": emulator.base_url, "password": emulator.api_key}
    )
    try:
        emulator.advance_clock(-8 * DAY)
        old = OpenAIFilesHook().upload_file(
            io.BytesIO(fine_tune_lines()), "fine-tune", filename="support_conversations_2024-05-09.jsonl"
        )
        unrelated = OpenAIFilesHook().upload_file(io.BytesIO(fine_tune_lines()), "fine-tune", filename="other.jsonl")
        emulator.advance_clock(8 * DAY)
    finally:
        del os.environ["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"]

    staging = tmp_path / "staging"
    report = run_dag(
        airflow_home, emulator, staging, "openai_fine_tune_data_pipeline.py", "fine_tune_dag", "2024-05-17"
    )
    assert report["state"] == "success", report["tasks"]
    assert set(report["tasks"].values()) == {"success"}, report["tasks"]
    assert "wait_until_processed" in report["tasks"]
    # the sensor deferred and was resumed by the trigger (3.1 writes task logs to files only)
    assert "Deferring" in report["log"] + report.get("task_logs", "")

    files = {f["id"]: f for f in emulator.files()}
    assert old["id"] not in files  # removed by retention
    assert unrelated["id"] in files  # other pipelines' files are left alone
    uploaded = xcom(report, "upload_training_file")
    assert files[uploaded["id"]]["filename"] == "support_conversations_2024-05-17.jsonl"
    assert files[uploaded["id"]]["status"] == "processed"
    built = staging / "fine_tune" / "support_conversations_2024-05-17.jsonl"
    assert emulator.content(uploaded["id"]) == built.read_bytes()
    assert (staging / "fine_tune" / "support_conversations_2024-05-17.downloaded.jsonl").read_bytes() == (
        built.read_bytes()
    )
    verified = xcom(report, "verify_round_trip")
    assert verified["file_id"] == uploaded["id"] and verified["bytes"] == built.stat().st_size
    assert xcom(report, "apply_retention") == [old["id"]]
    assert xcom(report, "wait_until_processed")["status"] == "processed"


def test_batch_input_files(airflow_home: Path, emulator: Any, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    report = run_dag(airflow_home, emulator, staging, "openai_batch_input_files.py", "batch_dag", "2024-05-18")
    assert report["state"] == "success", report["tasks"]
    assert set(report["tasks"].values()) == {"success"}, report["tasks"]

    uploaded = xcom(report, "upload_batch_input")
    assert uploaded["purpose"] == "batch"
    assert uploaded["expires_at"] == uploaded["created_at"] + 7 * DAY
    assert xcom(report, "delete_batch_input") == [uploaded["id"]]
    assert xcom(report, "check_input_copy") == 36
    assert emulator.files() == []  # deleted at the end
    requests = emulator.request_log()
    assert ("DELETE", f"/v1/files/{uploaded['id']}", 200) in requests
    assert sum(1 for method, path, _ in requests if method == "POST" and path == "/v1/files") == 1
