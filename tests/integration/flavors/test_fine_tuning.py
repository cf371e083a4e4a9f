"""The fine-tuning job operator, sensor and trigger on OpenAI and on Azure OpenAI, changing only the connection.

Each test runs once per flavor (``flavor_target_factory`` from ``tests.support.azure``). The
assertions are the end state a user relies on: exactly one job on the service, trained on the bytes
given, succeeded, and its results CSV landed byte for byte.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException, TaskDeferred
from airflow_openai_files.exceptions import OpenAIFilesRequestError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.operators import OpenAIFineTuningJobOperator
from airflow_openai_files.sensors import OpenAIFineTuningJobSensor
from airflow_openai_files.triggers import OpenAIFineTuningJobTrigger
from tests.support.azure import FlavorTarget
from tests.support.task_helpers import fine_tune_lines, make_context
from tests.support.triggers import run_trigger

MODEL = "gpt-4o-mini-2024-07-18"
#: Short but real job timings: the first look at a new job sees it working.
TIMINGS = {"fine_tuning_validate_seconds": 0.1, "fine_tuning_queue_seconds": 0.1, "fine_tuning_train_seconds": 0.6}


def assert_one_job_landed(target: FlavorTarget, training: bytes, result: dict[str, Any], out: Path) -> dict[str, Any]:
    [job] = target.emulator.fine_tuning_jobs()
    assert job["status"] == "succeeded" and job["fine_tuned_model"] and job["model"] == MODEL
    assert target.emulator.content(job["training_file"]) == training
    assert result["job_id"] == job["id"] and result["fine_tuned_model"] == job["fine_tuned_model"]
    [results_file] = job["result_files"]
    assert result["results_path"] == str(out) and out.read_bytes() == target.emulator.content(results_file)
    assert result["metrics"] and "train_loss" in result["metrics"]
    creates = [e for e in target.emulator.request_log() if e[:2] == ("POST", target.path("fine_tuning/jobs"))]
    assert creates == [("POST", target.path("fine_tuning/jobs"), 200)]  # never refused, never sent twice
    return job


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_fine_tuning_operator(flavor_target_factory: Any, tmp_path: Path, deferrable: bool) -> None:
    target: FlavorTarget = flavor_target_factory(**TIMINGS)
    training = fine_tune_lines(20)
    source = tmp_path / "train.jsonl"
    source.write_bytes(training)
    out = tmp_path / "results.csv"
    operator = OpenAIFineTuningJobOperator(
        task_id="tune",
        training_file=str(source),
        model=MODEL,
        suffix="parity",
        results_destination=str(out),
        deferrable=deferrable,
        poll_interval=0.05,
    )
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(make_context())
        assert isinstance(deferred.value.trigger, OpenAIFineTuningJobTrigger)
        [event] = run_trigger(deferred.value.trigger)
        assert event["status"] == "success"
        result = operator.execute_complete(make_context(), event)
    else:
        result = operator.execute(make_context())
    job = assert_one_job_landed(target, training, result, out)
    assert "parity" in job["fine_tuned_model"]


def test_fine_tuning_operator_waits_for_processed_file(flavor_target_factory: Any, tmp_path: Path) -> None:
    """The job is created only once the training file is ``processed``, on both flavors.

    Azure refuses a job on a file that is not ``processed``; OpenAI has answered "still being processed"
    for fine-tuning too, so the operator waits there as well (unlike the batch operator).
    """
    target: FlavorTarget = flavor_target_factory(processing_delay=0.3, **TIMINGS)
    training = fine_tune_lines(20)
    source = tmp_path / "train.jsonl"
    source.write_bytes(training)
    out = tmp_path / "results.csv"
    result = OpenAIFineTuningJobOperator(
        task_id="tune", training_file=str(source), model=MODEL, results_destination=str(out), poll_interval=0.05
    ).execute(make_context())
    job = assert_one_job_landed(target, training, result, out)
    log = target.emulator.request_log()
    create_at = log.index(("POST", target.path("fine_tuning/jobs"), 200))
    polls = [e for e in log[:create_at] if e[:2] == ("GET", target.path(f"files/{job['training_file']}"))]
    assert polls  # it looked again until the file was processed
    assert target.emulator.file(job["training_file"])["status"] == "processed"


def test_job_on_unprocessed_file_is_refused_on_azure_only(flavor_target_factory: Any) -> None:
    target: FlavorTarget = flavor_target_factory(processing_delay=600, **TIMINGS)
    hook = OpenAIFilesHook()
    created = hook.upload_file(io.BytesIO(fine_tune_lines(12)), "fine-tune", filename="train.jsonl")
    if target.is_azure:
        with pytest.raises(OpenAIFilesRequestError) as info:
            hook.create_fine_tuning_job(created["id"], MODEL)
        assert info.value.http_status == 400 and "pending" in str(info.value)
        assert target.emulator.fine_tuning_jobs() == []
        target.emulator.advance_clock(601)
    job = hook.create_fine_tuning_job(created["id"], MODEL)
    assert [j["id"] for j in target.emulator.fine_tuning_jobs()] == [job["id"]]


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_fine_tuning_sensor(flavor_target_factory: Any, deferrable: bool) -> None:
    target: FlavorTarget = flavor_target_factory(**TIMINGS)
    hook = OpenAIFilesHook()
    created = hook.upload_file(io.BytesIO(fine_tune_lines(12)), "fine-tune", filename="train.jsonl")
    hook.wait_for_input_file(created["id"], poll_interval=0.05)
    job = hook.create_fine_tuning_job(created["id"], MODEL)
    sensor = OpenAIFineTuningJobSensor(
        task_id="wait", job_id=job["id"], deferrable=deferrable, poke_interval=0.05, timeout=30
    )
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(make_context())
        [event] = run_trigger(deferred.value.trigger)
        result = sensor.execute_complete(make_context(), event)
    else:
        result = sensor.execute(make_context())
    [stored] = target.emulator.fine_tuning_jobs()
    assert result["id"] == stored["id"] == job["id"] and stored["status"] == result["status"] == "succeeded"
    assert result["fine_tuned_model"] == stored["fine_tuned_model"]
    # deferred: the triggerer's shared poller reads a page of GET /fine_tuning/jobs
    polled = (target.path(f"fine_tuning/jobs/{job['id']}"), target.path("fine_tuning/jobs"))
    polls = [p for m, p, _ in target.emulator.request_log() if m == "GET" and p in polled]
    assert len(polls) >= 2


def test_fine_tuning_trigger_and_sensor_on_cancelled_job(flavor_target_factory: Any) -> None:
    target: FlavorTarget = flavor_target_factory(fine_tuning_validate_seconds=600)
    hook = OpenAIFilesHook()
    created = hook.upload_file(io.BytesIO(fine_tune_lines(12)), "fine-tune", filename="train.jsonl")
    hook.wait_for_input_file(created["id"], poll_interval=0.05)
    job = hook.create_fine_tuning_job(created["id"], MODEL)
    assert hook.cancel_fine_tuning_job(job["id"])["status"] == "cancelled"
    [event] = run_trigger(OpenAIFineTuningJobTrigger(job["id"], poll_interval=0.05, timeout=30))
    assert event["status"] == "error" and event["job"]["status"] == "cancelled"
    assert f"Fine-tuning job {job['id']} was cancelled" in event["message"]
    with pytest.raises(AirflowFailException, match="was cancelled"):
        OpenAIFineTuningJobSensor(task_id="wait", job_id=job["id"], poke_interval=0.05, timeout=5).execute(
            make_context()
        )
    assert [j["status"] for j in target.emulator.fine_tuning_jobs()] == ["cancelled"]
