"""OpenAIFineTuningJobSensor for jobs created elsewhere: poke, reschedule, deferrable; failures fail once."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files._compat import (
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.sensors import OpenAIFineTuningJobSensor
from tests.support.task_helpers import fine_tune_lines, make_context
from tests.support.triggers import trigger_event

MODEL = "gpt-4.1-mini-2025-04-14"
TRAIN_SECONDS = 3600.0


pytestmark = pytest.mark.openai_files_emulator(fine_tuning_train_seconds=TRAIN_SECONDS)


def create_job(examples: int = 12) -> dict[str, Any]:
    hook = OpenAIFilesHook()
    file = hook.upload_file(io.BytesIO(fine_tune_lines(examples)), "fine-tune", filename="t.jsonl", validate=False)
    return hook.create_fine_tuning_job(file["id"], MODEL)


def sensor(job_id: Any, **kwargs: Any) -> OpenAIFineTuningJobSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return OpenAIFineTuningJobSensor(task_id="wait_for_job", job_id=job_id, **kwargs)


def test_poke_returns_the_succeeded_job(openai_files_connection: Any) -> None:
    job = create_job()
    openai_files_connection.advance_clock(2 * TRAIN_SECONDS)
    result = sensor(job, deferrable=False).execute(make_context())  # a job dict works as job_id
    assert result["id"] == job["id"] and result["status"] == "succeeded" and result["fine_tuned_model"]


def test_reschedule_mode_gives_back_the_slot_while_running(openai_files_connection: Any) -> None:
    job = create_job()
    op = sensor(job["id"], mode="reschedule", deferrable=False, poke_interval=5)
    context = make_context()
    context["ti"] = SimpleNamespace(try_number=1, get_first_reschedule_date=lambda _context: None)
    with pytest.raises(AirflowRescheduleException):
        op.execute(context)
    assert openai_files_connection.fine_tuning_jobs()[0]["status"] != "cancelled"  # a sensor never cancels
    openai_files_connection.advance_clock(2 * TRAIN_SECONDS)
    assert op.execute(context)["status"] == "succeeded"


def test_deferrable_waits_in_the_triggerer(openai_files_connection: Any) -> None:
    job = create_job()
    op = sensor(job["id"], deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(make_context())
    trigger = deferred.value.trigger
    assert trigger.cancel_on_kill is False
    openai_files_connection.advance_clock(2 * TRAIN_SECONDS)

    payload = trigger_event(trigger)
    result = op.resume_execution("execute_complete", {"event": payload}, make_context())
    assert result["status"] == "succeeded"


def test_failed_job_fails_at_once_with_its_error(openai_files_connection: Any) -> None:
    job = create_job(examples=9)
    openai_files_connection.advance_clock(60)
    with pytest.raises(AirflowFailException, match="code=invalid_n_examples, param=training_file"):
        sensor(job["id"], deferrable=False).execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor(job["id"], deferrable=True, soft_fail=True).execute(make_context())


def test_missing_job_fails_at_once(openai_files_connection: Any) -> None:
    with pytest.raises(AirflowFailException, match="does not exist"):
        sensor("ftjob-nothere123", deferrable=False).execute(make_context())
