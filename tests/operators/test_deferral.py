"""What the batch and fine-tuning operators do with each event of their trigger (``defer_to_trigger`` /
``trigger_outcome`` of :class:`~airflow_openai_files.operators.base.OpenAIBaseOperatorMixin`): real
objects on the emulator, real triggers rebuilt from their serialized form, the task's end state asserted.

Success through the triggerer is tested with each operator (``test_batch_operator.py``,
``test_fine_tuning_operator.py``); here: timeouts, failures, and a poll that failed for good.
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowException, AirflowFailException, TaskDeferred
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.operators import OpenAIBatchOperator, OpenAIFineTuningJobOperator
from airflow_openai_files.operators.base import DEFER_TIMEOUT_MARGIN
from tests.support.task_helpers import batch_lines, fine_tune_lines, make_context
from tests.support.triggers import trigger_event

MODEL = "gpt-4.1-mini-2025-04-14"
HOUR = 3600.0


pytestmark = pytest.mark.openai_files_emulator(batch_in_progress_seconds=HOUR, fine_tuning_train_seconds=HOUR)


@pytest.fixture
def emulator(openai_files_connection: Any) -> Any:
    return openai_files_connection


def the_event(deferred: TaskDeferred) -> dict[str, Any]:
    """The one event of the deferred trigger, rebuilt from its serialized form as the triggerer does."""
    return trigger_event(deferred)


def batch_operator(**kwargs: Any) -> OpenAIBatchOperator:
    file = OpenAIFilesHook().upload_file(io.BytesIO(batch_lines(3)), "batch", filename="in.jsonl", validate=False)
    kwargs.setdefault("poll_interval", 0.05)
    return OpenAIBatchOperator(
        task_id="batch", input_file=file["id"], endpoint="/v1/chat/completions", deferrable=True, **kwargs
    )


def job_operator(**kwargs: Any) -> OpenAIFineTuningJobOperator:
    file = OpenAIFilesHook().upload_file(io.BytesIO(fine_tune_lines(12)), "fine-tune", filename="t.jsonl")
    kwargs.setdefault("poll_interval", 0.05)
    return OpenAIFineTuningJobOperator(task_id="tune", training_file=file["id"], model=MODEL, deferrable=True, **kwargs)


def defer(operator: Any) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as info:
        operator.execute(make_context())
    return info.value


def resume(operator: Any, event: dict[str, Any] | None) -> Any:
    return operator.resume_execution("execute_complete", {"event": event}, make_context())


def test_batch_timeout_in_the_triggerer_cancels_the_batch_and_fails(emulator: Any) -> None:
    operator = batch_operator(timeout=0.4)
    deferred = defer(operator)
    assert deferred.timeout is not None and deferred.timeout <= timedelta(seconds=0.4 + DEFER_TIMEOUT_MARGIN)
    event = the_event(deferred)
    assert event["status"] == "timeout"
    with pytest.raises(AirflowFailException, match=r"Timed out after .*batch_\w+ to finish.*the batch was cancelled"):
        resume(operator, event)
    assert emulator.batches()[0]["status"] in ("cancelling", "cancelled")


def test_batch_poll_failed_for_good_is_retried_not_failed(emulator: Any) -> None:
    operator = batch_operator()
    deferred = defer(operator)
    batch_id = emulator.batches()[0]["id"]
    # The trigger polls through its connection's shared poller: a page of GET /batches, single gets for the rest.
    for path in ("/v1/batches", f"/v1/batches/{batch_id}"):
        emulator.add_fault(method="GET", path=path, status=401, times=50)
    event = the_event(deferred)
    assert event["status"] == "error" and event["batch"] is None
    with pytest.raises(AirflowException) as info:
        resume(operator, event)
    assert not isinstance(info.value, AirflowFailException)  # a retry resumes waiting on the same batch
    assert emulator.batches()[0]["status"] == "in_progress"


def test_job_timeout_in_the_triggerer_leaves_the_job_for_a_retry(emulator: Any) -> None:
    operator = job_operator(timeout=0.4)
    event = the_event(defer(operator))
    assert event["status"] == "timeout"
    with pytest.raises(AirflowException, match="a retry of this task resumes it") as info:
        resume(operator, event)
    assert not isinstance(info.value, AirflowFailException)
    assert emulator.fine_tuning_jobs()[0]["status"] in ("validating_files", "queued", "running")


def test_job_cancelled_while_deferred_fails_once(emulator: Any) -> None:
    operator = job_operator()
    deferred = defer(operator)
    OpenAIFilesHook().cancel_fine_tuning_job(emulator.fine_tuning_jobs()[0]["id"])
    event = the_event(deferred)
    assert event["status"] == "error" and event["job"]["status"] == "cancelled"
    with pytest.raises(AirflowFailException, match=r"Fine-tuning job ftjob-\w+ was cancelled"):
        resume(operator, event)


@pytest.mark.parametrize("make", [batch_operator, job_operator], ids=["batch", "fine-tuning job"])
def test_resumed_without_an_event_may_be_retried(emulator: Any, make: Any) -> None:
    with pytest.raises(AirflowException, match="resumed without a trigger event") as info:
        resume(make(), None)
    assert not isinstance(info.value, AirflowFailException)
