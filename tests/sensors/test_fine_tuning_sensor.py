"""OpenAIFineTuningJobSensor: what only jobs have (their ``error``, their events, never cancelling).

The plumbing every sensor shares is tested once, over every resource, in ``test_base_sensor.py``.
"""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException, AirflowRescheduleException, TaskDeferred
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.sensors import OpenAIFineTuningJobSensor
from tests.support.task_helpers import fine_tune_lines, make_context

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


def event_lines(output: str, job_id: str) -> list[str]:
    """The task log's event lines (``ftjob-...: [info] Validating training file ...``), without timestamps."""
    marker = f"{job_id}: ["
    return [line[line.index(marker) :] for line in output.splitlines() if marker in line]


def test_each_check_logs_the_new_events_once(openai_files_connection: Any, capsys: pytest.CaptureFixture[str]) -> None:
    job = create_job()
    op = sensor(job["id"], mode="reschedule", poke_interval=5)
    context = make_context()
    context["ti"] = SimpleNamespace(try_number=1, get_first_reschedule_date=lambda _context: None)
    with pytest.raises(AirflowRescheduleException):
        op.execute(context)
    first = event_lines(capsys.readouterr().out, job["id"])
    assert any("Validating training file" in line for line in first)
    openai_files_connection.advance_clock(2 * TRAIN_SECONDS)
    assert op.execute(context)["status"] == "succeeded"
    later = event_lines(capsys.readouterr().out, job["id"])
    assert later and not set(later) & set(first)  # only what is new since the last check


def test_a_sensor_never_cancels_the_job(openai_files_connection: Any) -> None:
    job = create_job()
    with pytest.raises(TaskDeferred) as deferred:
        sensor(job["id"], deferrable=True).execute(make_context())
    assert deferred.value.trigger.cancel_on_kill is False
    assert deferred.value.trigger.last_event_id is not None  # the worker's check logged the first events
    assert openai_files_connection.fine_tuning_jobs()[0]["status"] != "cancelled"


def test_failed_job_fails_at_once_with_its_error(openai_files_connection: Any) -> None:
    job = create_job(examples=9)
    openai_files_connection.advance_clock(60)
    with pytest.raises(AirflowFailException, match="code=invalid_n_examples, param=training_file"):
        sensor(job["id"], deferrable=False).execute(make_context())
