"""OpenAIBatchTrigger: status changes logged, one terminal event with the Batch, serializable, timeouts."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.triggers import OpenAIBatchTrigger
from tests.support.files import batch_lines
from tests.support.triggers import run_trigger

pytestmark = pytest.mark.openai_files_emulator(batch_validating_seconds=0.2, batch_in_progress_seconds=0.5)


def create(body: bytes | None = None) -> dict[str, Any]:
    hook = OpenAIFilesHook()
    uploaded = hook.upload_file(io.BytesIO(body or batch_lines(4)), "batch", filename="in.jsonl", validate=False)
    return hook.create_batch(uploaded["id"], "/v1/chat/completions")


def test_serialize_round_trips_without_the_key(openai_files_connection: Any) -> None:
    trigger = OpenAIBatchTrigger("batch_abc", success_statuses=("completed", "expired"), poll_interval=2, timeout=60)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_openai_files.triggers.OpenAIBatchTrigger"
    assert kwargs["batch_id"] == "batch_abc" and kwargs["success_statuses"] == ["completed", "expired"]
    assert openai_files_connection.api_key not in json.dumps(kwargs)
    assert OpenAIBatchTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_rejects_unsafe_ids_and_non_terminal_targets() -> None:
    with pytest.raises(OpenAIFilesValidationError):
        OpenAIBatchTrigger("../files")
    with pytest.raises(ValueError, match="success_statuses must be one or more of completed"):
        OpenAIBatchTrigger("batch_abc", success_statuses=("in_progress",))


# Each stage lasts longer than a loaded machine may take between the batch's creation and the trigger's first
# poll, so every status is seen (0.2 s of ``validating`` was missed under a load of 10 on 2 cores).
@pytest.mark.openai_files_emulator(batch_validating_seconds=1.5, batch_in_progress_seconds=1.5)
def test_success_after_the_lifecycle_logs_each_status(
    openai_files_connection: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = create()
    with caplog.at_level("INFO"):
        events = run_trigger(OpenAIBatchTrigger(batch["id"], poll_interval=0.05, timeout=30))
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "success" and event["batch_id"] == batch["id"]
    assert event["batch"]["status"] == "completed" and event["batch"]["output_file_id"]
    assert event["batch"]["request_counts"] == {"total": 4, "completed": 4, "failed": 0}
    text = caplog.text + capsys.readouterr().out
    assert text.index("is validating") < text.index("is in_progress") < text.index("is completed: 4/4 requests")


def test_other_terminal_status_is_an_error_event_with_the_batch(openai_files_connection: Any) -> None:
    bad = batch_lines(2).replace(b"/v1/chat/completions", b"/v1/embeddings", 1)
    batch = create(bad)
    events = run_trigger(OpenAIBatchTrigger(batch["id"], poll_interval=0.05, timeout=30))
    assert [e["status"] for e in events] == ["error"]
    assert events[0]["batch"]["status"] == "failed"
    assert events[0]["batch"]["errors"]["data"][0]["code"] == "url_mismatch"
    # The operator's way: every terminal status is the end of the wait.
    everything = OpenAIBatchTrigger(batch["id"], success_statuses=("completed", "failed", "expired", "cancelled"))
    assert [e["status"] for e in run_trigger(everything)] == ["success"]


def test_not_found_is_an_error_event(openai_files_connection: Any) -> None:
    events = run_trigger(OpenAIBatchTrigger("batch_doesnotexist", poll_interval=0.05, timeout=10))
    assert [e["status"] for e in events] == ["error"]
    assert "batch_doesnotexist does not exist (HTTP 404" in events[0]["message"]


def test_timeout_event_carries_the_last_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_openai_files.emulator import Emulator

    with Emulator(data_dir=tmp_path / "slow", batch_in_progress_seconds=3600) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_OPENAI_FILES_DEFAULT", emu.airflow_connection())
        batch = create()
        events = run_trigger(OpenAIBatchTrigger(batch["id"], poll_interval=0.05, timeout=0.4))
    assert [e["status"] for e in events] == ["timeout"]
    assert events[0]["batch"]["status"] == "in_progress"
    # The last counts seen travel in the event: the task's log shows them when it resumes.
    assert events[0]["request_counts"] == events[0]["batch"]["request_counts"]
    assert events[0]["request_counts"]["total"] == 4
    assert f"waiting for batch {batch['id']} to finish" in events[0]["message"]


def test_retries_server_errors_like_the_hook(openai_files_connection: Any) -> None:
    batch = create()
    openai_files_connection.add_fault(method="GET", path=f"/v1/batches/{batch['id']}", status=503, times=1)
    events = run_trigger(OpenAIBatchTrigger(batch["id"], poll_interval=0.05, timeout=30))
    assert [e["status"] for e in events] == ["success"]


class SteppedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines:
    """A logger that keeps what ``info`` was given (the trigger logs through structlog, not caplog)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)

    debug = warning = info


def test_progress_is_logged_when_counts_change_at_most_once_a_minute() -> None:
    clock = SteppedClock()
    trigger = OpenAIBatchTrigger("batch_abc", clock=clock)
    log = trigger._log = Lines()

    def poll(at: float, status: str, done: int) -> bool:
        """One poll at ``at`` seconds; whether it logged a progress line."""
        clock.now = 1000.0 + at
        before = len(log.lines)
        trigger.log_progress(
            {"id": "batch_abc", "status": status, "request_counts": {"total": 10, "completed": done, "failed": 0}}
        )
        return len(log.lines) > before

    assert not poll(0, "in_progress", 0)  # a new status: the base class logs that line
    assert not poll(10, "in_progress", 2)  # changed, but within a minute of the last line
    assert not poll(40, "in_progress", 4)
    assert poll(61, "in_progress", 4)  # a minute on: the counts differ from what the log last showed
    assert log.lines[-1] == "Batch batch_abc is in_progress: 4/10 requests done, 4 succeeded, 0 failed"
    assert not poll(62, "in_progress", 5)
    assert not poll(100, "in_progress", 5)
    assert poll(125, "in_progress", 5)  # 5 was never logged
    assert not poll(300, "in_progress", 5)  # nothing changed: nothing to say, however long it takes
    assert not poll(400, "finalizing", 10)  # the base class logs a status change
    assert len(log.lines) == 2
    assert "clock" not in trigger.serialize()[1]
