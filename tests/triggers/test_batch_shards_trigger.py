"""OpenAIBatchShardsTrigger: one poll loop over a sharded job's batches; fires when the worker has work."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest

from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.triggers import OpenAIBatchShardsTrigger
from tests.support.files import batch_lines
from tests.support.triggers import run_trigger


@pytest.fixture
def emulator(openai_files_emulators: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emu = openai_files_emulators.get(batch_in_progress_seconds=3600)
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_FILES_DEFAULT", emu.airflow_connection())
    return emu


def create(prefix: str) -> str:
    hook = OpenAIFilesHook()
    uploaded = hook.upload_file(io.BytesIO(batch_lines(4, prefix)), "batch", filename="in.jsonl", validate=False)
    return str(hook.create_batch(uploaded["id"], "/v1/chat/completions")["id"])


def run(trigger: OpenAIBatchShardsTrigger) -> list[dict[str, Any]]:
    return run_trigger(trigger)  # rebuilt from serialize(), as the triggerer runs it


def test_serialize_round_trips_with_the_jobs_state(emulator: Any) -> None:
    job = {"shards": [{"key": "0", "batch_id": "batch_a"}], "lines": 10}
    trigger = OpenAIBatchShardsTrigger(["batch_a", "batch_b"], job=job, wake_at=123.0, answered=(3, 1), total_lines=10)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_openai_files.triggers.OpenAIBatchShardsTrigger"
    assert kwargs["batch_ids"] == ["batch_a", "batch_b"] and kwargs["job"] == job
    assert emulator.api_key not in json.dumps(kwargs)
    assert OpenAIBatchShardsTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_fires_when_one_batch_ends_with_every_batch(emulator: Any) -> None:
    first, second = create("a"), create("b")
    emulator.expire_batch(second)
    [event] = run(OpenAIBatchShardsTrigger([first, second], job={"x": 1}, poll_interval=0.05, timeout=10))
    assert event["status"] == "success" and event["job"] == {"x": 1}
    assert event["batches"][first]["status"] == "in_progress"
    assert event["batches"][second]["status"] == "expired"
    assert second in event["message"]


def test_fires_at_wake_at_without_batches(emulator: Any) -> None:
    started = time.monotonic()
    [event] = run(OpenAIBatchShardsTrigger([], wake_at=time.time() + 0.3, poll_interval=0.05, timeout=10))
    assert event["status"] == "success" and event["batches"] == {}
    assert 0.25 <= time.monotonic() - started < 5


def test_times_out_while_batches_run(emulator: Any) -> None:
    [event] = run(OpenAIBatchShardsTrigger([create("a")], poll_interval=0.05, timeout=0.3))
    assert event["status"] == "timeout"
