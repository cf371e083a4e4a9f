"""Sensor behaviour from issue 12: timeouts that name the file, ids in every form, start_from_trigger."""

from __future__ import annotations

import asyncio
import importlib
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files._compat import (
    SUPPORTS_START_FROM_TRIGGER,
    AirflowSensorTimeout,
    AirflowSkipException,
)
from airflow_openai_files.sensors import OpenAIFileSensor
from tests.sensors.test_sensor import put, sensor
from tests.support.emulators import FILES_STAY_UPLOADED
from tests.support.task_helpers import make_context


@FILES_STAY_UPLOADED
def test_poke_timeout_names_the_file_and_its_last_status(openai_files_connection: Any) -> None:
    created = put()
    with pytest.raises(AirflowSensorTimeout, match=rf"{created['id']} is uploaded; waiting for processed"):
        sensor(created["id"], timeout=0.2).execute(make_context())
    with pytest.raises(AirflowSkipException, match=rf"{created['id']} is uploaded"):
        sensor(created["id"], timeout=0.2, soft_fail=True).execute(make_context())


@FILES_STAY_UPLOADED
def test_reschedule_timeout_names_the_file_and_its_last_status(openai_files_connection: Any) -> None:
    created = put()
    op = sensor(created["id"], mode="reschedule", poke_interval=5, timeout=60)
    context = make_context()
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    context["ti"] = SimpleNamespace(try_number=1, get_first_reschedule_date=lambda _context: long_ago)
    with pytest.raises(AirflowSensorTimeout, match=rf"Last check: File {created['id']} is uploaded"):
        op.execute(context)


@pytest.mark.parametrize(
    "form",
    [
        lambda f: f,  # the File dict
        lambda f: str(f),  # what Jinja renders from it
        lambda f: [f["id"]],  # a one-element list (e.g. a lazy sequence of one)
    ],
)
def test_file_id_in_every_form(openai_files_connection: Any, form: Any) -> None:
    created = put()
    assert sensor(form(created)).execute(make_context())["id"] == created["id"]


# -- start_from_trigger ------------------------------------------------------------------------------


@pytest.mark.skipif(not SUPPORTS_START_FROM_TRIGGER, reason="the scheduler honours start_from_trigger from 3.3")
def test_start_from_trigger_starts_the_wait_in_the_triggerer(openai_files_connection: Any) -> None:
    created = put()
    op = sensor(created["id"], deferrable=True, start_from_trigger=True, timeout=30)
    assert op.start_from_trigger is True
    args = op.start_trigger_args
    assert args.next_method == "execute_complete"
    assert args.timeout is not None and args.timeout.total_seconds() > 30
    # What the triggerer does: build the trigger from its class path and kwargs, run it, resume the task.
    module, _, name = args.trigger_cls.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**args.trigger_kwargs)

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first_event())
    assert payload["status"] == "success"
    assert op.execute_complete(make_context(), payload)["id"] == created["id"]
    # Other tasks of the same class are left alone (start_trigger_args is set on the instance).
    assert OpenAIFileSensor.start_from_trigger is False


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"file_id": "{{ ti.xcom_pull('upload')['id'] }}", "deferrable": True}, "literal"),
        ({"file_id": "file-abc", "deferrable": False}, "deferrable=True"),
    ],
)
def test_start_from_trigger_falls_back_to_the_worker_and_says_why(kwargs: dict[str, Any], reason: str) -> None:
    op = OpenAIFileSensor(task_id="wait", start_from_trigger=True, **kwargs)
    assert op.start_from_trigger is False
    assert reason in op.start_from_trigger_note


@pytest.mark.skipif(SUPPORTS_START_FROM_TRIGGER, reason="Airflow 3.3+ honours start_from_trigger")
def test_start_from_trigger_is_skipped_where_the_scheduler_ignores_it() -> None:
    op = OpenAIFileSensor(task_id="wait", file_id="file-abc", deferrable=True, start_from_trigger=True)
    assert op.start_from_trigger is False
    assert "3.3" in op.start_from_trigger_note
