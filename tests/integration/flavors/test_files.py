"""Every file operator, the file sensor and its trigger, on OpenAI and on Azure OpenAI, changing only the connection.

Each test runs once per flavor (``flavor_target`` from ``tests.support.azure``, via this folder's conftest): the emulator plays the flavor
and the default connection points at it. Assertions are on what the user relies on: the objects on the
emulator, the bytes on disk, the routes the requests took.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files._compat import AIRFLOW_V_3_2_PLUS, AirflowFailException, TaskDeferred
from airflow_openai_files.exceptions import OpenAIFilesRequestError, OpenAIFilesTimeoutError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.operators import (
    OpenAIDeleteFileOperator,
    OpenAIDownloadFileOperator,
    OpenAIFilesCleanupOperator,
    OpenAIUploadFileOperator,
)
from airflow_openai_files.sensors import OpenAIFileSensor
from airflow_openai_files.triggers import OpenAIFileTrigger
from tests.support.azure import FlavorTarget
from tests.support.task_helpers import batch_lines, fine_tune_lines, make_context
from tests.support.triggers import run_trigger


def test_hook_round_trip(flavor_target: FlavorTarget, tmp_path: Path) -> None:
    emulator = flavor_target.emulator
    body = fine_tune_lines(20)
    hook = OpenAIFilesHook()
    created = hook.upload_file(io.BytesIO(body), "fine-tune", filename="train.jsonl")
    assert created["status"] in flavor_target.settled_statuses
    assert emulator.content(created["id"]) == body
    assert hook.get_file(created["id"])["status"] == "processed"
    assert [f["id"] for f in hook.list_files(purpose="fine-tune")] == [created["id"]]

    batch = hook.upload_file(io.BytesIO(batch_lines(4)), "batch", filename="requests.jsonl")
    destination = tmp_path / "copy.jsonl"
    assert hook.download_file(batch["id"], destination) == str(destination)
    assert destination.read_bytes() == batch_lines(4)

    assert hook.delete_file(created["id"])["deleted"] is True
    assert hook.delete_file(created["id"], missing_ok=True)["deleted"] is False
    assert [f["id"] for f in emulator.files()] == [batch["id"]]

    log = emulator.request_log()
    upload_status = 201 if flavor_target.is_azure else 200  # Azure answers 201 Created (with a Location)
    assert ("POST", flavor_target.path("files"), upload_status) in log
    assert ("GET", flavor_target.path(f"files/{batch['id']}/content"), 200) in log
    assert ("DELETE", flavor_target.path(f"files/{created['id']}"), 404) in log
    assert all(path.startswith(flavor_target.path("")) for _, path, _ in log)
    ok, message = hook.test_connection()
    assert ok and "request id" in message  # Azure's apim-request-id where OpenAI sends x-request-id


def test_uploads_api(flavor_target: FlavorTarget) -> None:
    body = b"".join([fine_tune_lines(400)] * 3)
    hook = OpenAIFilesHook(part_size=64 * 1024, max_concurrency=3)
    created = hook.upload_file(io.BytesIO(body), "fine-tune", filename="big.jsonl", multipart=True)
    assert flavor_target.emulator.content(created["id"]) == body
    assert hashlib.sha256(flavor_target.emulator.content(created["id"])).digest() == hashlib.sha256(body).digest()
    log = flavor_target.emulator.request_log()
    parts = [entry for entry in log if entry[0] == "POST" and entry[1].endswith("/parts")]
    assert len(parts) == -(-len(body) // (64 * 1024))
    assert all(path.startswith(flavor_target.path("uploads/")) and status == 200 for _, path, status in parts)
    assert flavor_target.emulator.uploads()[0]["status"] == "completed"


def test_operators(flavor_target: FlavorTarget, tmp_path: Path) -> None:
    emulator = flavor_target.emulator
    source = tmp_path / "train.jsonl"
    source.write_bytes(fine_tune_lines(15))
    uploaded = OpenAIUploadFileOperator(task_id="up", file_path=str(source), purpose="fine-tune").execute(
        make_context()
    )
    assert json.loads(json.dumps(uploaded)) == uploaded
    assert emulator.content(uploaded["id"]) == source.read_bytes()

    batch = OpenAIUploadFileOperator(
        task_id="up_batch", file_path=io.BytesIO(batch_lines(3)), filename="b.jsonl", purpose="batch"
    ).execute(make_context())
    out = tmp_path / "b-copy.jsonl"
    OpenAIDownloadFileOperator(task_id="down", file_id=batch["id"], destination=str(out)).execute(make_context())
    assert out.read_bytes() == batch_lines(3)

    OpenAIDeleteFileOperator(task_id="del", file_id=uploaded["id"]).execute(make_context())
    assert uploaded["id"] not in {f["id"] for f in emulator.files()}

    removed = OpenAIFilesCleanupOperator(task_id="clean", filename_glob="b.*", purpose="batch").execute(make_context())
    assert removed == [batch["id"]]
    assert emulator.files() == []


def test_sensor_poke_waits_for_processed(flavor_target_factory: Any) -> None:
    target: FlavorTarget = flavor_target_factory(processing_delay=0.6)
    created = OpenAIFilesHook().upload_file(io.BytesIO(fine_tune_lines()), "fine-tune", filename="t.jsonl")
    assert created["status"] == target.new_file_status
    result = OpenAIFileSensor(task_id="wait", file_id=created["id"], poke_interval=0.05, timeout=30).execute(
        make_context()
    )
    assert result["status"] == "processed"
    polls = [p for m, p, _ in target.emulator.request_log() if m == "GET" and p.endswith(created["id"])]
    assert len(polls) >= 2


def test_deferrable_sensor_and_trigger(flavor_target_factory: Any) -> None:
    target: FlavorTarget = flavor_target_factory(processing_delay=0.5)
    created = OpenAIFilesHook().upload_file(io.BytesIO(fine_tune_lines()), "fine-tune", filename="t.jsonl")
    sensor = OpenAIFileSensor(task_id="wait", file_id=created["id"], deferrable=True, poke_interval=0.05, timeout=30)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, OpenAIFileTrigger)
    events = run_trigger(trigger)
    assert [e["status"] for e in events] == ["success"] and events[0]["file"]["status"] == "processed"
    resumed = sensor.resume_execution("execute_complete", {"event": events[0]}, make_context())
    assert resumed["id"] == created["id"] and resumed["status"] == "processed"
    assert any(p == target.path(f"files/{created['id']}") for _, p, _ in target.emulator.request_log())


def test_malformed_file(flavor_target: FlavorTarget) -> None:
    """Azure reports content problems on the file (``error``); OpenAI processes it and leaves them to the job."""
    bad = b'{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n'
    created = OpenAIFilesHook().upload_file(io.BytesIO(bad), "fine-tune", filename="bad.jsonl", validate=False)
    hook = OpenAIFilesHook()
    sensor = OpenAIFileSensor(task_id="wait", file_id=created["id"], poke_interval=0.05, timeout=10)
    if flavor_target.is_azure:
        assert hook.get_file(created["id"])["status"] == "error"
        with pytest.raises(AirflowFailException, match="failed processing"):
            sensor.execute(make_context())
        with pytest.raises(OpenAIFilesRequestError, match="failed processing"):
            hook.wait_for_input_file(created["id"], timeout=5, poll_interval=0.05)
    else:
        assert sensor.execute(make_context())["status"] == "processed"
        assert hook.wait_for_input_file(created["id"]) is None


def test_wait_for_input_file(flavor_target_factory: Any) -> None:
    target: FlavorTarget = flavor_target_factory(processing_delay=0.4)
    hook = OpenAIFilesHook()
    created = hook.upload_file(io.BytesIO(batch_lines(2)), "batch", filename="in.jsonl")
    before = len(target.emulator.request_log())
    waited = hook.wait_for_input_file(created["id"], timeout=30, poll_interval=0.05)
    polls = len(target.emulator.request_log()) - before
    assert hook.settings.files_need_processing is target.is_azure
    if target.is_azure:
        assert waited is not None and waited["status"] == "processed" and polls >= 2
    else:
        assert waited is None and polls == 0  # OpenAI takes the file at once: nothing sent


def test_missing_file_error_names_status_and_request_id(flavor_target: FlavorTarget) -> None:
    with pytest.raises(OpenAIFilesRequestError) as info:
        OpenAIFilesHook().get_file("file-doesnotexist")
    err = info.value
    assert err.http_status == 404 and err.request_id
    assert "HTTP 404" in str(err) and err.request_id in str(err)


def test_wrong_key_fails_fast(flavor_target_factory: Any) -> None:
    target: FlavorTarget = flavor_target_factory()
    wrong = json.loads(target.connection)
    wrong["password"] = "not-the-key-SECRET"
    import os

    os.environ["AIRFLOW_CONN_WRONG_KEY"] = json.dumps(wrong)
    try:
        with pytest.raises(OpenAIFilesRequestError) as info:
            OpenAIFilesHook("wrong_key").get_file("file-abc")
    finally:
        del os.environ["AIRFLOW_CONN_WRONG_KEY"]
    assert info.value.http_status == 401 and "SECRET" not in str(info.value)
    attempts = [entry for entry in target.emulator.request_log() if entry[2] == 401]
    assert len(attempts) == 1  # never retried


# -- an example DAG, unchanged, on both flavors ---------------------------------------------------------


@pytest.mark.slow
def test_example_dag_runs_unchanged(flavor_target_factory: Any, airflow_home: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.integration.dags.test_example_dags import DAGS, RUNNER
    from tests.support.airflow_db import airflow_env

    # A processing delay: the sensor's first check sees pending/uploaded and defers to the trigger.
    target: FlavorTarget = flavor_target_factory(processing_delay=1.0)
    env = airflow_env(airflow_home)
    env["OPENAI_FILES_STAGING"] = f"file://{tmp_path / 'staging'}"
    env["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"] = target.connection  # the only difference between the runs
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(DAGS / "openai_batch_input_files.py"), "batch_dag", "2024-05-18"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["state"] == "success", report["tasks"]
    assert set(report["tasks"].values()) == {"success"}, report["tasks"]
    # Airflow 3.1's dag.test() echoes no task log and keeps none where the runner looks: the deferral is
    # seen from 3.2 on (on 3.1 the run's success through the deferrable sensor is what is checked).
    if AIRFLOW_V_3_2_PLUS:
        assert "Deferring" in done.stdout + done.stderr + report.get("task_logs", "")
    assert target.emulator.files() == []  # uploaded, checked, then deleted by the DAG
    log = target.emulator.request_log()
    uploads = [entry for entry in log if entry[0] == "POST" and entry[1] == target.path("files")]
    assert len(uploads) == 1 and uploads[0][2] == (201 if target.is_azure else 200)
    assert any(m == "DELETE" and s == 200 for m, _, s in log)
    password = json.loads(target.connection).get("password", "")
    assert password and password not in done.stdout + done.stderr  # the key never reaches the task logs


def test_wait_until_processed_times_out_and_sees_deletion(flavor_target_factory: Any) -> None:
    target: FlavorTarget = flavor_target_factory(processing_delay=600)
    hook = OpenAIFilesHook()
    created = hook.upload_file(io.BytesIO(batch_lines(2)), "batch", filename="in.jsonl")
    with pytest.raises(OpenAIFilesTimeoutError) as info:
        hook.wait_until_processed(created["id"], timeout=0.3, poll_interval=0.05)
    assert not isinstance(info.value, OpenAIFilesRequestError)  # a timeout may heal: Airflow may retry the task
    assert f"waiting for {created['id']} to be processed" in str(info.value)
    assert target.new_file_status in str(info.value)
    target.emulator.advance_clock(601)
    assert hook.wait_until_processed(created["id"], timeout=5, poll_interval=0.05)["status"] == "processed"
    hook.delete_file(created["id"])
    with pytest.raises(OpenAIFilesRequestError):
        hook.wait_until_processed(created["id"], timeout=5, poll_interval=0.05)  # 404: never usable
