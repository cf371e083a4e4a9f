"""The batch operator, sensor and trigger on OpenAI and on Azure OpenAI, changing only the connection.

Each test runs once per flavor (``flavor_target_factory`` from ``tests.support.azure``): the emulator
plays the flavor and the default connection points at it. The assertions are the end state a user
relies on: exactly one batch on the service, made from the bytes given, and its results landed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files._compat import TaskDeferred
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.operators import OpenAIBatchOperator
from airflow_openai_files.sensors import OpenAIBatchSensor
from airflow_openai_files.triggers import OpenAIBatchTrigger
from tests.support.azure import FlavorTarget
from tests.support.task_helpers import batch_lines, make_context
from tests.support.triggers import run_trigger

ENDPOINT = "/v1/chat/completions"
#: Short but real service timings: the first look at a new batch sees it working.
TIMINGS = {"batch_validating_seconds": 0.2, "batch_in_progress_seconds": 0.4}


def assert_one_batch_landed(target: FlavorTarget, source: bytes, summary: dict[str, Any], out: Path) -> dict[str, Any]:
    """Exactly one completed batch, made from ``source``, its output landed byte for byte at ``out``."""
    [batch] = target.emulator.batches()
    assert batch["status"] == "completed" and batch["endpoint"] == ENDPOINT
    assert target.emulator.content(batch["input_file_id"]) == source
    assert summary["batch_id"] == batch["id"] and summary["status"] == "completed"
    assert summary["request_counts"] == {"total": 4, "completed": 4, "failed": 0}
    assert summary["output_path"] == str(out) and out.read_bytes() == target.emulator.content(batch["output_file_id"])
    assert len(out.read_bytes().splitlines()) == 4 and summary["error_path"] is None
    log = target.emulator.request_log()
    creates = [entry for entry in log if entry[:2] == ("POST", target.path("batches"))]
    assert creates == [("POST", target.path("batches"), 200)]  # never refused, never sent twice
    return batch


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_batch_operator(flavor_target_factory: Any, tmp_path: Path, deferrable: bool) -> None:
    target: FlavorTarget = flavor_target_factory(**TIMINGS)
    source = batch_lines(4)
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(source)
    (tmp_path / "landed").mkdir()
    out = tmp_path / "landed" / "output.jsonl"
    operator = OpenAIBatchOperator(
        task_id="run_batch",
        input_file=str(requests),
        endpoint=ENDPOINT,
        metadata={"ds": "2024-05-17"},
        output_destination=str(out),
        error_destination=str(tmp_path / "landed" / "errors.jsonl"),
        deferrable=deferrable,
        poll_interval=0.05,
    )
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(make_context())
        assert isinstance(deferred.value.trigger, OpenAIBatchTrigger)
        assert target.emulator.batches()[0]["status"] in ("validating", "in_progress")  # deferred while it ran
        [event] = run_trigger(deferred.value.trigger)
        assert event["status"] == "success"
        summary = operator.execute_complete(make_context(), event)
    else:
        summary = operator.execute(make_context())
    batch = assert_one_batch_landed(target, source, summary, out)
    assert batch["metadata"]["ds"] == "2024-05-17"
    assert not (tmp_path / "landed" / "errors.jsonl").exists()


def test_batch_operator_waits_for_processed_input(flavor_target_factory: Any, tmp_path: Path) -> None:
    """On Azure the input must be ``processed`` before the batch is created; OpenAI takes it at once."""
    target: FlavorTarget = flavor_target_factory(processing_delay=0.3, **TIMINGS)
    source = batch_lines(4)
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(source)
    out = tmp_path / "output.jsonl"
    summary = OpenAIBatchOperator(
        task_id="run_batch",
        input_file=str(requests),
        endpoint=ENDPOINT,
        output_destination=str(out),
        poll_interval=0.05,
    ).execute(make_context())
    batch = assert_one_batch_landed(target, source, summary, out)
    log = target.emulator.request_log()
    create_at = log.index(("POST", target.path("batches"), 200))
    file_polls = [
        entry for entry in log[:create_at] if entry[:2] == ("GET", target.path(f"files/{batch['input_file_id']}"))
    ]
    assert bool(file_polls) is target.is_azure  # Azure: polled until processed; OpenAI: nothing sent


def test_batch_on_unprocessed_file_is_refused_on_azure_only(flavor_target_factory: Any) -> None:
    target: FlavorTarget = flavor_target_factory(processing_delay=600, **TIMINGS)
    hook = OpenAIFilesHook()
    created = hook.upload_file(io.BytesIO(batch_lines(4)), "batch", filename="requests.jsonl")
    assert created["status"] == target.new_file_status
    if target.is_azure:
        from airflow_openai_files.exceptions import OpenAIFilesRequestError

        with pytest.raises(OpenAIFilesRequestError) as info:
            hook.create_batch(created["id"], ENDPOINT)
        assert info.value.http_status == 400 and "pending" in str(info.value)
        assert target.emulator.batches() == []
        target.emulator.advance_clock(601)
    batch = hook.create_batch(created["id"], ENDPOINT)
    assert [b["id"] for b in target.emulator.batches()] == [batch["id"]]


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_batch_sensor(flavor_target_factory: Any, deferrable: bool) -> None:
    target: FlavorTarget = flavor_target_factory(**TIMINGS)
    hook = OpenAIFilesHook()
    created = hook.upload_file(io.BytesIO(batch_lines(4)), "batch", filename="requests.jsonl")
    hook.wait_for_input_file(created["id"], poll_interval=0.05)
    batch = hook.create_batch(created["id"], ENDPOINT)
    sensor = OpenAIBatchSensor(
        task_id="wait", batch_id=batch["id"], deferrable=deferrable, poke_interval=0.05, timeout=30
    )
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(make_context())
        [event] = run_trigger(deferred.value.trigger)
        result = sensor.execute_complete(make_context(), event)
    else:
        result = sensor.execute(make_context())
    assert result["id"] == batch["id"] and result["status"] == "completed"
    [stored] = target.emulator.batches()
    assert stored["status"] == "completed" and result["output_file_id"] == stored["output_file_id"]
    assert len(target.emulator.content(stored["output_file_id"]).splitlines()) == 4
    # deferred: the triggerer's shared poller reads a page of GET /batches
    polled = (target.path(f"batches/{batch['id']}"), target.path("batches"))
    polls = [p for m, p, _ in target.emulator.request_log() if m == "GET" and p in polled]
    assert len(polls) >= 2


def test_batch_trigger_reports_cancelled_as_error(flavor_target_factory: Any) -> None:
    target: FlavorTarget = flavor_target_factory(batch_validating_seconds=0.1, batch_in_progress_seconds=600)
    hook = OpenAIFilesHook()
    created = hook.upload_file(io.BytesIO(batch_lines(4)), "batch", filename="requests.jsonl")
    hook.wait_for_input_file(created["id"], poll_interval=0.05)
    batch = hook.create_batch(created["id"], ENDPOINT)
    assert hook.cancel_batch(batch["id"])["status"] in ("cancelling", "cancelled")
    [event] = run_trigger(OpenAIBatchTrigger(batch["id"], poll_interval=0.05, timeout=30))
    assert event["status"] == "error" and event["batch"]["status"] == "cancelled"
    assert target.emulator.batches()[0]["status"] == "cancelled"


# -- the openai_batch_pipeline example DAG, unchanged, on both flavors ------------------------------------


class _Connection:
    """What :func:`tests.integration.dags.test_example_dags.run_dag` asks of an emulator: the connection to set."""

    def __init__(self, connection: str) -> None:
        self.connection = connection

    def airflow_connection(self) -> str:
        return self.connection


@pytest.mark.slow
def test_batch_pipeline_dag_runs_unchanged(flavor_target_factory: Any, airflow_home: Path, tmp_path: Path) -> None:
    from tests.integration.dags import test_example_dags as examples

    # A processing delay (Azure: the operator waits for `processed`) and a batch that runs long enough
    # for the operator's first look to see it working and defer to the trigger.
    target: FlavorTarget = flavor_target_factory(
        processing_delay=0.5, batch_validating_seconds=0.5, batch_in_progress_seconds=1.0
    )
    staging = tmp_path / "staging"
    report = examples.run_dag(  # the only difference between the two runs: the connection
        airflow_home,
        _Connection(target.connection),
        staging,
        "openai_batch_pipeline.py",
        "batch_pipeline_dag",
        "2024-06-03",
    )
    assert report["tasks"] == {"build_requests": "success", "run_batch": "success", "join_results": "success"}
    assert report["state"] == "success"
    assert "deferring: the triggerer checks it every" in report["log"]

    [batch] = target.emulator.batches()
    assert batch["status"] == "completed" and batch["metadata"]["ds"] == "2024-06-03"
    folder = staging / "batch_pipeline" / "2024-06-03"
    assert target.emulator.content(batch["input_file_id"]) == (folder / "requests.jsonl").read_bytes()
    assert (folder / "output.jsonl").read_bytes() == target.emulator.content(batch["output_file_id"])
    joined = examples.xcom(report, "join_results")
    assert joined["joined"] == joined["succeeded"] == 30 and joined["batch_id"] == batch["id"]
    log = target.emulator.request_log()
    assert all(path.startswith(target.path("")) for _, path, _ in log)  # Azure's routes on Azure, /v1 on OpenAI
    upload = [e for e in log if e[:2] == ("POST", target.path("files"))]
    assert upload == [("POST", target.path("files"), 201 if target.is_azure else 200)]
    assert [e for e in log if e[:2] == ("POST", target.path("batches"))] == [("POST", target.path("batches"), 200)]
    password = json.loads(target.connection)["password"]
    assert password not in report["log"]  # the key never reaches the task logs


def test_sharded_job_expiries_by_flavor(flavor_target_factory: Any, tmp_path: Path) -> None:
    """Azure holds at most 500 batch files without an expiry: shard inputs and outputs carry one there by default;
    ``expires_after`` / ``output_expires_after`` set them on both flavors."""
    target = flavor_target_factory()
    source = tmp_path / "job.jsonl"
    source.write_bytes(batch_lines(9))
    common = {"task_id": "job", "endpoint": ENDPOINT, "poll_interval": 0.05, "deferrable": False}
    out = tmp_path / "out.jsonl"
    OpenAIBatchOperator(input_file=str(source), max_batch_lines=4, output_destination=str(out), **common).execute(
        make_context()
    )
    batches = target.emulator.batches()
    assert len(batches) == 3 and out.read_bytes().count(b"\n") == 9
    inputs = [target.emulator.file(b["input_file_id"]) for b in batches]
    outputs = [target.emulator.file(b["output_file_id"]) for b in batches]
    fortnight = 14 * 24 * 3600
    for file in inputs + outputs:  # OpenAI: no expiry of ours (the service's own 30-day default for batch files)
        assert file.get("expires_at") == (file["created_at"] + fortnight if target.is_azure else file.get("expires_at"))
        if not target.is_azure:
            assert file.get("expires_at") is None or file["expires_at"] - file["created_at"] != fortnight
    target.emulator.reset()
    OpenAIBatchOperator(
        input_file=str(source), max_batch_lines=4, expires_after=7200, output_expires_after=3600, **common
    ).execute(make_context())
    for batch in target.emulator.batches():
        given = target.emulator.file(batch["input_file_id"])
        output = target.emulator.file(batch["output_file_id"])
        assert given["expires_at"] - given["created_at"] == 7200
        assert output["expires_at"] - output["created_at"] == 3600


def test_single_batch_expiries_by_flavor(flavor_target_factory: Any, tmp_path: Path) -> None:
    """An input within one batch gets the same defaults as a shard: 14 days on Azure (its 500-file cap)."""
    target = flavor_target_factory()
    source = tmp_path / "one.jsonl"
    source.write_bytes(batch_lines(3))
    common = {"task_id": "one", "endpoint": ENDPOINT, "poll_interval": 0.05, "deferrable": False}
    OpenAIBatchOperator(input_file=str(source), output_destination=str(tmp_path / "out.jsonl"), **common).execute(
        make_context()
    )
    (batch,) = target.emulator.batches()
    fortnight = 14 * 24 * 3600
    for file in (target.emulator.file(batch["input_file_id"]), target.emulator.file(batch["output_file_id"])):
        if target.is_azure:
            assert file["expires_at"] - file["created_at"] == fortnight, file
        else:  # no expiry of ours (the service's own 30-day default for batch input files)
            assert file.get("expires_at") is None or file["expires_at"] - file["created_at"] != fortnight, file
    target.emulator.reset()
    OpenAIBatchOperator(input_file=str(source), expires_after=7200, output_expires_after=3600, **common).execute(
        make_context()
    )
    (batch,) = target.emulator.batches()
    given, output = target.emulator.file(batch["input_file_id"]), target.emulator.file(batch["output_file_id"])
    assert given["expires_at"] - given["created_at"] == 7200
    assert output["expires_at"] - output["created_at"] == 3600
