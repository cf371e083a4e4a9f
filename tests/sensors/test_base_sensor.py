"""``OpenAIBaseSensor``, tested once over every resource's sensor against the emulator.

Each :class:`Case` says how to make a real object of its resource wait, succeed or fail on the emulator;
the tests drive the sensor in poke, reschedule and deferrable modes (and ``start_from_trigger``) and
assert what a DAG relies on: the object returned, the task's exception (fail, skip, timeout) and its
message, and how many requests the worker made. Resource-specific behaviour stays in the per-sensor
modules (``test_sensor.py``, ``test_batch_sensor.py``, ``test_fine_tuning_sensor.py``).
"""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files._compat import (
    SUPPORTS_START_FROM_TRIGGER,
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.operators.base import DEFER_TIMEOUT_MARGIN
from airflow_openai_files.sensors import OpenAIBatchSensor, OpenAIFileSensor, OpenAIFineTuningJobSensor
from airflow_openai_files.sensors.base import OpenAIBaseSensor
from airflow_openai_files.triggers import OpenAIBatchTrigger, OpenAIFileTrigger, OpenAIFineTuningJobTrigger
from tests.support.task_helpers import batch_lines, fine_tune_lines, make_context
from tests.support.triggers import run_trigger

MODEL = "gpt-4.1-mini-2025-04-14"
#: Every object waits on the emulator's clock for an hour: a test moves the clock to end a wait.
HOUR = 3600.0
pytestmark = pytest.mark.openai_files_emulator(
    processing_delay=HOUR,  # files stay ``uploaded``
    file_validation="status",  # a malformed fine-tune file ends ``error`` once processed
    batch_in_progress_seconds=HOUR,
    fine_tuning_train_seconds=HOUR,
)


def _upload(body: bytes, purpose: str, name: str) -> dict[str, Any]:
    return OpenAIFilesHook().upload_file(io.BytesIO(body), purpose, filename=name, validate=False)


def _batch() -> str:
    file = _upload(batch_lines(3), "batch", "in.jsonl")
    return str(OpenAIFilesHook().create_batch(file["id"], "/v1/chat/completions")["id"])


def _job() -> str:
    file = _upload(fine_tune_lines(12), "fine-tune", "train.jsonl")
    return str(OpenAIFilesHook().create_fine_tuning_job(file["id"], MODEL)["id"])


def _cancel_batch(emulator: Any, batch_id: str) -> None:
    OpenAIFilesHook().cancel_batch(batch_id)
    emulator.advance_clock(60)  # cancelling -> cancelled


@dataclass(frozen=True)
class Case:
    """How to drive one resource's sensor through a real object on the emulator."""

    name: str
    sensor: type[OpenAIBaseSensor]
    trigger: type
    waiting: Callable[[], str]  # create an object still waiting; its id
    finish: Callable[[Any, str], None]  # (emulator, id): the object reaches the sensor's target
    failing: Callable[[], str]  # create an object that will end in a failure status; its id
    fail: Callable[[Any, str], None]  # (emulator, id): it does
    failure: str  # a regex of the failure's message
    missing: str  # a well-formed id of nothing
    done_status: str  # the returned object's status on success

    def make(self, object_id: Any, **kwargs: Any) -> OpenAIBaseSensor:
        kwargs.setdefault("poke_interval", 0.05)
        kwargs.setdefault("timeout", 30)
        return self.sensor(task_id="wait", **{self.sensor.id_field: object_id}, **kwargs)


CASES = [
    Case(
        name="file",
        sensor=OpenAIFileSensor,
        trigger=OpenAIFileTrigger,
        waiting=lambda: str(_upload(fine_tune_lines(12), "fine-tune", "train.jsonl")["id"]),
        finish=lambda emulator, _id: emulator.advance_clock(HOUR + 1),
        failing=lambda: str(_upload(fine_tune_lines(3), "fine-tune", "short.jsonl")["id"]),
        fail=lambda emulator, _id: emulator.advance_clock(HOUR + 1),
        failure=r"failed processing: .*at least 10 examples",
        missing="file-nope123",
        done_status="processed",
    ),
    Case(
        name="batch",
        sensor=OpenAIBatchSensor,
        trigger=OpenAIBatchTrigger,
        waiting=_batch,
        finish=lambda emulator, _id: emulator.advance_clock(2 * HOUR),
        failing=_batch,
        fail=_cancel_batch,
        failure=r"Batch batch_\w+ is cancelled",
        missing="batch_nope123",
        done_status="completed",
    ),
    Case(
        name="fine-tuning job",
        sensor=OpenAIFineTuningJobSensor,
        trigger=OpenAIFineTuningJobTrigger,
        waiting=_job,
        finish=lambda emulator, _id: emulator.advance_clock(3 * HOUR),
        failing=_job,
        fail=lambda _emulator, job_id: OpenAIFilesHook().cancel_fine_tuning_job(job_id),
        failure=r"Fine-tuning job ftjob-\w+ was cancelled",
        missing="ftjob-nothere123",
        done_status="succeeded",
    ),
]


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def emulator(openai_files_connection: Any) -> Any:
    """The session's emulator with this module's settings, emptied, the default connection on it."""
    return openai_files_connection


def resume(sensor: OpenAIBaseSensor, payload: dict[str, Any]) -> Any:
    return sensor.resume_execution("execute_complete", {"event": payload}, make_context())


def defer(sensor: OpenAIBaseSensor) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(make_context())
    return info.value


def gets_of(emulator: Any, object_id: str) -> list[str]:
    return [path for method, path, _ in emulator.request_log() if method == "GET" and path.endswith(object_id)]


def rescheduling(first_reschedule: datetime | None = None) -> dict[str, Any]:
    context = make_context()
    context["ti"] = SimpleNamespace(try_number=1, get_first_reschedule_date=lambda _context: first_reschedule)
    return context


# -- poke ------------------------------------------------------------------------------------------------


def test_poke_waits_then_returns_the_object(case: Case, emulator: Any) -> None:
    object_id = case.waiting()
    sensor = case.make(object_id)
    assert sensor.poke(make_context()).is_done is False
    case.finish(emulator, object_id)
    result = sensor.execute(make_context())
    assert result["id"] == object_id and result["status"] == case.done_status
    assert json.loads(json.dumps(result)) == result  # an XCom


def test_failure_fails_at_once_or_skips_under_soft_fail(case: Case, emulator: Any) -> None:
    object_id = case.failing()
    case.fail(emulator, object_id)
    with pytest.raises(AirflowFailException, match=case.failure):
        case.make(object_id, timeout=600).execute(make_context())
    assert len(gets_of(emulator, object_id)) == 1  # no retry, no second look
    with pytest.raises(AirflowSkipException):
        case.make(object_id, soft_fail=True).execute(make_context())
    with pytest.raises(AirflowSkipException):  # the first check of a deferrable sensor too
        case.make(object_id, deferrable=True, soft_fail=True).execute(make_context())


def test_missing_object_fails_with_the_resources_words(case: Case, emulator: Any) -> None:
    with pytest.raises(AirflowFailException, match=rf"{case.missing} does not exist \(HTTP 404\).*request_id="):
        case.make(case.missing).execute(make_context())
    with pytest.raises(AirflowSkipException):
        case.make(case.missing, soft_fail=True).execute(make_context())
    with pytest.raises(AirflowSkipException):
        case.make(case.missing, deferrable=True, soft_fail=True).execute(make_context())


def test_poke_timeout_names_the_object_and_its_last_status(case: Case, emulator: Any) -> None:
    object_id = case.waiting()
    with pytest.raises(AirflowSensorTimeout, match=rf"Last check: .*{object_id}"):
        case.make(object_id, timeout=0.2).execute(make_context())
    with pytest.raises(AirflowSkipException, match=rf"Last check: .*{object_id}"):
        case.make(object_id, timeout=0.2, soft_fail=True).execute(make_context())


def test_reschedule_mode_gives_the_slot_back_then_returns(case: Case, emulator: Any) -> None:
    object_id = case.waiting()
    sensor = case.make(object_id, mode="reschedule", poke_interval=5)
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(rescheduling())
    case.finish(emulator, object_id)
    assert sensor.execute(rescheduling())["status"] == case.done_status


def test_reschedule_timeout_names_the_object(case: Case, emulator: Any) -> None:
    object_id = case.waiting()
    sensor = case.make(object_id, mode="reschedule", poke_interval=5, timeout=60)
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    with pytest.raises(AirflowSensorTimeout, match=rf"Last check: .*{object_id}"):
        sensor.execute(rescheduling(long_ago))


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda sensor, i: {"id": i, "status": "x"}, id="object"),
        pytest.param(lambda sensor, i: str({"id": i}), id="rendered-object"),
        pytest.param(lambda sensor, i: [i], id="one-item-list"),
        pytest.param(lambda sensor, i: {sensor.id_field: i}, id="operator-summary"),
    ],
)
def test_the_id_in_every_form(case: Case, emulator: Any, form: Any) -> None:
    object_id = case.waiting()
    case.finish(emulator, object_id)
    assert case.make(form(case.sensor, object_id)).execute(make_context())["id"] == object_id


def test_templated_arguments(case: Case, emulator: Any) -> None:
    object_id = case.waiting()
    case.finish(emulator, object_id)
    sensor = case.make("{{ params.id }}", openai_conn_id="{{ params.conn }}")
    context = make_context(params={"id": object_id, "conn": "openai_files_default"})
    sensor.render_template_fields(context)
    assert sensor.execute(context)["id"] == object_id


def test_deferrable_default_follows_the_config(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert case.make(case.missing).deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert case.make(case.missing).deferrable is False


# -- deferrable ------------------------------------------------------------------------------------------


def test_deferrable_checks_once_then_defers_and_resumes(case: Case, emulator: Any) -> None:
    object_id = case.waiting()
    sensor = case.make(object_id, deferrable=True, timeout=120)
    deferred = defer(sensor)
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=120 + DEFER_TIMEOUT_MARGIN)
    assert isinstance(deferred.trigger, case.trigger)
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == f"airflow_openai_files.triggers.{case.trigger.__name__}"
    assert kwargs[case.sensor.id_field] == object_id and kwargs["timeout"] == 120
    assert emulator.api_key not in json.dumps(kwargs)
    assert len(gets_of(emulator, object_id)) == 1  # exactly one check on the worker

    case.finish(emulator, object_id)
    [event] = run_trigger(deferred.trigger)
    assert event["status"] == "success"
    result = resume(sensor, event)
    assert result["id"] == object_id and result["status"] == case.done_status


def test_deferrable_done_on_the_first_check_does_not_defer(case: Case, emulator: Any) -> None:
    object_id = case.waiting()
    case.finish(emulator, object_id)
    assert case.make(object_id, deferrable=True).execute(make_context())["status"] == case.done_status


def test_deferred_failure_fails_or_skips(case: Case, emulator: Any) -> None:
    object_id = case.failing()
    deferred = defer(case.make(object_id, deferrable=True))
    case.fail(emulator, object_id)
    [event] = run_trigger(deferred.trigger)
    assert event["status"] == "error"
    with pytest.raises(AirflowFailException, match=case.failure):
        resume(case.make(object_id, deferrable=True), event)
    with pytest.raises(AirflowSkipException):
        resume(case.make(object_id, deferrable=True, soft_fail=True), event)


def test_deferred_timeout_names_the_object_and_soft_fail_skips(case: Case, emulator: Any) -> None:
    object_id = case.waiting()
    [event] = run_trigger(defer(case.make(object_id, deferrable=True, timeout=0.3)).trigger)
    assert event["status"] == "timeout"
    with pytest.raises(AirflowSensorTimeout, match=rf"Timed out after .*{object_id}"):
        resume(case.make(object_id, deferrable=True), event)
    with pytest.raises(AirflowSkipException):
        resume(case.make(object_id, deferrable=True, soft_fail=True), event)


def test_the_schedulers_deferral_timeout_is_a_sensor_timeout(case: Case) -> None:
    from airflow.sdk.bases.operator import TriggerFailureReason

    fail = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    with pytest.raises(AirflowSensorTimeout):
        case.make(case.missing, deferrable=True).resume_execution("__fail__", fail, make_context())
    with pytest.raises(AirflowSkipException):
        case.make(case.missing, deferrable=True, soft_fail=True).resume_execution("__fail__", fail, make_context())


def test_resumed_without_an_event_may_be_retried(case: Case) -> None:
    with pytest.raises(AirflowException, match="resumed without a trigger event") as info:
        case.make(case.missing, deferrable=True).execute_complete(make_context(), None)
    assert not isinstance(info.value, AirflowFailException)


# -- start_from_trigger -----------------------------------------------------------------------------------


@pytest.mark.skipif(not SUPPORTS_START_FROM_TRIGGER, reason="the scheduler honours start_from_trigger from 3.3")
def test_start_from_trigger_starts_the_wait_in_the_triggerer(case: Case, emulator: Any) -> None:
    object_id = case.waiting()
    sensor = case.make(object_id, deferrable=True, start_from_trigger=True, timeout=30)
    assert sensor.start_from_trigger is True
    args = sensor.start_trigger_args
    assert args is not None and args.next_method == "execute_complete"
    assert args.timeout == timedelta(seconds=30 + DEFER_TIMEOUT_MARGIN)
    json.dumps(args.trigger_kwargs)  # literals only: the scheduler serializes them
    # What the triggerer does: build the trigger from its class path and kwargs, run it, resume the task.
    module, _, name = args.trigger_cls.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**args.trigger_kwargs)
    case.finish(emulator, object_id)
    [event] = run_trigger(trigger, serialized=False)  # built by hand above, as the triggerer does
    assert sensor.execute_complete(make_context(), event)["id"] == object_id
    # The trigger's one poll (a list page of the triggerer's shared poller, or the object's own GET; a job's
    # events are read besides); the worker never looked.
    polls = [p for m, p, _ in emulator.request_log() if m == "GET" and not p.endswith("/events")]
    assert len(polls) == 1, polls
    assert case.sensor.start_from_trigger is False  # set on the instance, never on the class


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"object_id": "{{ ti.xcom_pull('create') }}", "deferrable": True}, "literal"),
        ({"deferrable": False}, "deferrable=True"),
    ],
)
def test_start_from_trigger_falls_back_to_the_worker_and_says_why(
    case: Case, kwargs: dict[str, Any], reason: str
) -> None:
    kwargs = dict(kwargs)  # shared by the cases
    sensor = case.make(kwargs.pop("object_id", case.missing), start_from_trigger=True, **kwargs)
    assert sensor.start_from_trigger is False
    assert reason in sensor.start_from_trigger_note


@pytest.mark.skipif(SUPPORTS_START_FROM_TRIGGER, reason="Airflow 3.3+ honours start_from_trigger")
def test_start_from_trigger_is_skipped_where_the_scheduler_ignores_it(case: Case) -> None:
    sensor = case.make(case.missing, deferrable=True, start_from_trigger=True)
    assert sensor.start_from_trigger is False
    assert "3.3" in sensor.start_from_trigger_note
