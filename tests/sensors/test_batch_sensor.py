"""OpenAIBatchSensor: what only batches have (``success_statuses``, the service's ``errors.data``).

The plumbing every sensor shares is tested once, over every resource, in ``test_base_sensor.py``.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException, AirflowSkipException, TaskDeferred
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.sensors import OpenAIBatchSensor
from airflow_openai_files.triggers import OpenAIBatchTrigger
from tests.support.files import batch_lines
from tests.support.task_helpers import make_context

pytestmark = pytest.mark.openai_files_emulator(batch_in_progress_seconds=1.5)


def create(body: bytes | None = None) -> dict[str, Any]:
    hook = OpenAIFilesHook()
    uploaded = hook.upload_file(io.BytesIO(body or batch_lines(3)), "batch", filename="in.jsonl", validate=False)
    return hook.create_batch(uploaded["id"], "/v1/chat/completions")


def sensor(batch_id: Any, **kwargs: Any) -> OpenAIBatchSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return OpenAIBatchSensor(task_id="wait", batch_id=batch_id, **kwargs)


def test_poke_mode_returns_the_batch_with_its_output(openai_files_connection: Any) -> None:
    batch = create()
    result = sensor(batch["id"]).execute(make_context())
    assert result["id"] == batch["id"] and result["status"] == "completed"
    assert result["output_file_id"] == openai_files_connection.batches()[0]["output_file_id"]


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


def test_the_trigger_gets_the_success_statuses(openai_files_connection: Any) -> None:
    batch = create()
    with pytest.raises(TaskDeferred) as info:
        sensor(batch["id"], deferrable=True, success_statuses=["completed", "expired"]).execute(make_context())
    trigger = info.value.trigger
    assert isinstance(trigger, OpenAIBatchTrigger) and trigger.success_statuses == ("completed", "expired")


def test_non_terminal_success_statuses_fail_when_the_dag_is_parsed() -> None:
    with pytest.raises(AirflowFailException, match="success_statuses must be one or more of completed"):
        sensor("batch_abc", success_statuses=("in_progress",))
