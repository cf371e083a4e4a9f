"""OpenAIBatchSensor in poke, reschedule and deferrable modes against the emulator."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException, AirflowSensorTimeout, AirflowSkipException, TaskDeferred
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.sensors import OpenAIBatchSensor
from airflow_openai_files.triggers import OpenAIBatchTrigger
from tests.support.files import batch_lines
from tests.support.task_helpers import make_context
from tests.support.triggers import run_trigger

pytestmark = pytest.mark.openai_files_emulator(batch_in_progress_seconds=1.5)


def create(body: bytes | None = None) -> dict[str, Any]:
    hook = OpenAIFilesHook()
    uploaded = hook.upload_file(io.BytesIO(body or batch_lines(3)), "batch", filename="in.jsonl", validate=False)
    return hook.create_batch(uploaded["id"], "/v1/chat/completions")


def sensor(batch_id: Any, **kwargs: Any) -> OpenAIBatchSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return OpenAIBatchSensor(task_id="wait", batch_id=batch_id, **kwargs)


def test_poke_mode_returns_the_batch(openai_files_connection: Any) -> None:
    batch = create()
    result = sensor(batch["id"]).execute(make_context())
    assert result["id"] == batch["id"] and result["status"] == "completed"
    assert result["output_file_id"] == openai_files_connection.batches()[0]["output_file_id"]


def test_accepts_an_operator_summary(openai_files_connection: Any) -> None:
    batch = create()
    assert sensor({"batch_id": batch["id"], "status": "x"}).execute(make_context())["id"] == batch["id"]


def test_reschedule_mode_pokes_without_holding_the_slot(openai_files_connection: Any) -> None:
    from airflow_openai_files._compat import AirflowRescheduleException

    batch = create()
    op = sensor(batch["id"], mode="reschedule", poke_interval=60)
    context = make_context()
    context["ti"] = SimpleNamespace(try_number=1, get_first_reschedule_date=lambda _context: None)
    with pytest.raises(AirflowRescheduleException):
        op.execute(context)  # still in progress: the worker slot is given back
    openai_files_connection.advance_clock(2)
    assert op.execute(context)["status"] == "completed"


def test_failed_batch_fails_fast_with_the_services_errors(openai_files_connection: Any) -> None:
    batch = create(batch_lines(2).replace(b'"req-1"', b'"req-0"'))
    with pytest.raises(AirflowFailException, match=r"is failed.*line 2: duplicate_custom_id"):
        sensor(batch["id"]).execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor(batch["id"], soft_fail=True, deferrable=True).execute(make_context())


def test_other_terminal_statuses_can_count_as_success(openai_files_connection: Any) -> None:
    batch = create()
    OpenAIFilesHook().cancel_batch(batch["id"])
    with pytest.raises(AirflowFailException, match="cancel"):
        sensor(batch["id"]).execute(make_context())
    assert sensor(batch["id"], success_statuses=("completed", "cancelled")).execute(make_context())["id"]


def test_missing_batch_fails_fast(openai_files_connection: Any) -> None:
    with pytest.raises(AirflowFailException, match="batch_nope does not exist"):
        sensor("batch_nope").execute(make_context())


def test_deferrable_defers_and_resumes_with_the_batch(openai_files_connection: Any) -> None:
    batch = create()
    op = sensor(batch["id"], deferrable=True, poke_interval=0.05)
    with pytest.raises(TaskDeferred) as info:
        op.execute(make_context())
    trigger = info.value.trigger
    assert isinstance(trigger, OpenAIBatchTrigger) and trigger.success_statuses == ("completed",)
    [event] = run_trigger(trigger)
    result = op.resume_execution("execute_complete", {"event": event}, make_context())
    assert result["status"] == "completed"


def test_deferred_timeout_and_failure(openai_files_connection: Any) -> None:
    op = sensor("batch_x", deferrable=True)
    with pytest.raises(AirflowSensorTimeout):
        op.resume_execution(
            "execute_complete", {"event": {"status": "timeout", "message": "Timed out"}}, make_context()
        )
    failed = {"id": "batch_x", "status": "failed", "errors": {"data": [{"line": 3, "code": "c", "message": "m"}]}}
    with pytest.raises(AirflowFailException, match="line 3: c"):
        op.resume_execution(
            "execute_complete", {"event": {"status": "error", "batch": failed, "message": "x"}}, make_context()
        )
