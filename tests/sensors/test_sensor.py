"""OpenAIFileSensor in poke, reschedule and deferrable modes against the emulator."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files._compat import (
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.sensors import OpenAIFileSensor
from airflow_openai_files.triggers import OpenAIFileTrigger
from tests.support.connections import use_emulator
from tests.support.emulators import FILE_STATUS_ERRORS, FILES_STAY_UPLOADED, PROCESSING_DELAY
from tests.support.task_helpers import fine_tune_lines, make_context
from tests.support.triggers import run_trigger


def put(body: bytes | None = None, purpose: str = "fine-tune") -> dict[str, Any]:
    return OpenAIFilesHook().upload_file(
        io.BytesIO(body if body is not None else fine_tune_lines()), purpose, filename="train.jsonl", validate=False
    )


def sensor(file_id: Any, **kwargs: Any) -> OpenAIFileSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return OpenAIFileSensor(task_id="wait", file_id=file_id, **kwargs)


def resume(op: OpenAIFileSensor, payload: dict[str, Any]) -> Any:
    return op.resume_execution("execute_complete", {"event": payload}, make_context())


def defer(op: OpenAIFileSensor) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as info:
        op.execute(make_context())
    return info.value


# -- poke -----------------------------------------------------------------------------------------------


def test_poke_mode_returns_file_dict(openai_files_connection: Any) -> None:
    created = put()
    result = sensor(created["id"]).execute(make_context())
    assert result["id"] == created["id"] and result["status"] == "processed"
    assert json.loads(json.dumps(result)) == result


def test_poke_mode_waits_until_processed(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_openai_files.emulator import Emulator

    # 2 s: long enough that a loaded machine still polls before the flip, short enough for the suite.
    with Emulator(data_dir=tmp_path / "emu", processing_delay=2.0) as emulator:
        use_emulator(monkeypatch, emulator)
        created = put()
        assert created["status"] == "uploaded"
        result = sensor(created, deferrable=False).execute(make_context())  # a File dict works as file_id
        assert result["status"] == "processed"
        polls = [path for method, path, _ in emulator.request_log() if method == "GET"]
        assert len(polls) >= 2


@FILES_STAY_UPLOADED
def test_target_uploaded_is_reached_at_once(openai_files_connection: Any) -> None:
    created = put()
    assert sensor(created["id"], target_status="uploaded").execute(make_context())["status"] == "uploaded"


@FILE_STATUS_ERRORS
def test_error_status_fails_at_once_with_details(openai_files_connection: Any) -> None:
    created = put(fine_tune_lines(3))
    with pytest.raises(AirflowFailException, match="at least 10 examples"):
        sensor(created["id"], timeout=600).execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor(created["id"], soft_fail=True).execute(make_context())


def test_missing_file_fails_with_clear_message(openai_files_connection: Any) -> None:
    with pytest.raises(AirflowFailException, match=r"file-nope does not exist \(HTTP 404"):
        sensor("file-nope").execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor("file-nope", soft_fail=True).execute(make_context())


@FILES_STAY_UPLOADED
def test_poke_timeout_and_soft_fail(openai_files_connection: Any) -> None:
    created = put()
    with pytest.raises(AirflowSensorTimeout):
        sensor(created["id"], timeout=0.2).execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor(created["id"], timeout=0.2, soft_fail=True).execute(make_context())


@FILES_STAY_UPLOADED
def test_reschedule_mode(openai_files_connection: Any) -> None:
    created = put()
    op = sensor(created["id"], mode="reschedule", poke_interval=5)
    context = make_context()
    context["ti"] = SimpleNamespace(try_number=1, get_first_reschedule_date=lambda _context: None)
    with pytest.raises(AirflowRescheduleException):
        op.execute(context)
    openai_files_connection.advance_clock(PROCESSING_DELAY + 1)
    assert op.execute(context)["status"] == "processed"


def test_invalid_target_status_fails(openai_files_connection: Any) -> None:
    with pytest.raises(AirflowFailException, match="target_status"):
        sensor("file-abc", target_status="done").execute(make_context())


def test_templated_fields(openai_files_connection: Any) -> None:
    created = put()
    op = OpenAIFileSensor(
        task_id="wait",
        file_id="{{ params.id }}",
        target_status="{{ params.status }}",
        openai_conn_id="{{ params.conn }}",
        poke_interval=0.05,
    )
    context = make_context(params={"id": created["id"], "status": "processed", "conn": "openai_files_default"})
    op.render_template_fields(context)
    assert (op.file_id, op.target_status, op.openai_conn_id) == (created["id"], "processed", "openai_files_default")
    assert op.execute(context)["id"] == created["id"]


def test_deferrable_default_follows_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import airflow_openai_files.sensors.files as module

    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    try:
        assert importlib.reload(module).OpenAIFileSensor(task_id="s", file_id="file-a").deferrable is True
    finally:
        monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE")
        importlib.reload(module)
    assert module.OpenAIFileSensor(task_id="s", file_id="file-a").deferrable is False


# -- deferrable -----------------------------------------------------------------------------------------


@pytest.fixture
def uploaded(openai_files_connection: Any) -> Iterator[dict[str, Any]]:
    yield put()


@FILES_STAY_UPLOADED
def test_deferrable_checks_once_then_defers_and_resumes(openai_files_connection: Any, uploaded: dict[str, Any]) -> None:
    op = sensor(uploaded["id"], deferrable=True, poke_interval=0.05, timeout=120)
    deferred = defer(op)
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=180)
    trigger = deferred.trigger
    assert isinstance(trigger, OpenAIFileTrigger)
    path, kwargs = trigger.serialize()
    assert path == "airflow_openai_files.triggers.OpenAIFileTrigger"
    assert kwargs["file_id"] == uploaded["id"] and kwargs["poll_interval"] == 0.05 and kwargs["timeout"] == 120
    assert openai_files_connection.api_key not in json.dumps(kwargs)
    gets = [p for m, p, _ in openai_files_connection.request_log() if m == "GET"]
    assert gets == [f"/v1/files/{uploaded['id']}"]  # exactly one check on the worker

    openai_files_connection.advance_clock(PROCESSING_DELAY + 1)
    events = run_trigger(trigger)
    assert len(events) == 1
    assert events[0]["status"] == "success"
    result = resume(op, events[0])
    assert result["id"] == uploaded["id"] and result["status"] == "processed"
    assert json.loads(json.dumps(result)) == result


def test_deferrable_done_on_first_check_does_not_defer(openai_files_connection: Any) -> None:
    created = put()
    assert sensor(created["id"], deferrable=True).execute(make_context())["status"] == "processed"


@FILE_STATUS_ERRORS
def test_deferrable_first_check_error_and_soft_fail(openai_files_connection: Any) -> None:
    created = put(fine_tune_lines(2))
    with pytest.raises(AirflowFailException, match="at least 10"):
        sensor(created["id"], deferrable=True).execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor(created["id"], deferrable=True, soft_fail=True).execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor("file-missing", deferrable=True, soft_fail=True).execute(make_context())


@FILES_STAY_UPLOADED
def test_deferred_timeout_and_soft_fail(openai_files_connection: Any, uploaded: dict[str, Any]) -> None:
    op = sensor(uploaded["id"], deferrable=True, poke_interval=0.05, timeout=0.3)
    events = run_trigger(defer(op).trigger)
    assert [e["status"] for e in events] == ["timeout"]
    assert "Timed out" in events[0]["message"]
    with pytest.raises(AirflowSensorTimeout, match="Timed out"):
        resume(op, events[0])
    soft = sensor(uploaded["id"], deferrable=True, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        resume(soft, events[0])


@FILES_STAY_UPLOADED
def test_deferred_error_event_fails_or_skips(openai_files_connection: Any) -> None:
    payload = {"status": "error", "file_id": "file-x", "file": None, "message": "File file-x failed processing: x"}
    with pytest.raises(AirflowFailException, match="failed processing"):
        resume(sensor("file-x", deferrable=True), payload)
    with pytest.raises(AirflowSkipException):
        resume(sensor("file-x", deferrable=True, soft_fail=True), payload)


@FILES_STAY_UPLOADED
def test_deferral_timeout_from_scheduler_is_a_sensor_timeout(openai_files_connection: Any) -> None:
    from airflow.sdk.bases.operator import TriggerFailureReason

    fail = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    with pytest.raises(AirflowSensorTimeout):
        sensor("file-x", deferrable=True).resume_execution("__fail__", fail, make_context())
    with pytest.raises(AirflowSkipException):
        sensor("file-x", deferrable=True, soft_fail=True).resume_execution("__fail__", fail, make_context())
