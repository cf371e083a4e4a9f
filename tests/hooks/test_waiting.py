"""``wait_until``: the one wait loop on the worker, with real batches on the emulator.

The emulator's clock moves only when the test says so: the loop's ``sleep`` is the place a real wait
would pass time, so the test passes the emulator's time there and counts what the loop asked.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.exceptions import OpenAIFilesTimeoutError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.hooks.waiting import wait_until
from airflow_openai_files.resources import batches
from tests.support.task_helpers import batch_lines

IN_PROGRESS = 600.0


class Lines:
    """A logger standing in for the task's: keeps each formatted line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)


pytestmark = pytest.mark.openai_files_emulator(batch_in_progress_seconds=IN_PROGRESS)


@pytest.fixture
def emulator(openai_files_connection: Any) -> Any:
    return openai_files_connection


def create_batch() -> dict[str, Any]:
    hook = OpenAIFilesHook()
    file = hook.upload_file(io.BytesIO(batch_lines(4)), "batch", filename="in.jsonl", validate=False)
    return hook.create_batch(file["id"], "/v1/chat/completions")


def polls(emulator: Any, batch_id: str) -> int:
    return sum(1 for method, path, _ in emulator.request_log() if method == "GET" and path.endswith(batch_id))


def test_polls_until_the_verdict_and_logs_each_change_once(emulator: Any) -> None:
    batch = create_batch()
    hook = OpenAIFilesHook()
    log, slept = Lines(), []

    def sleep(seconds: float) -> None:  # the service's time passes while the worker sleeps
        slept.append(seconds)
        emulator.advance_clock(IN_PROGRESS / 4)

    done, verdict = wait_until(
        lambda: hook.get_batch(batch["id"]),
        batches.judge,
        poll_interval=30,
        timeout=3600,
        describe=batches.describe,
        what=f"batch {batch['id']} to finish",
        first=batch,
        log=log,
        sleep=sleep,
    )
    assert done["status"] == "completed" and verdict == ("success", batches.describe(done))
    assert polls(emulator, batch["id"]) == len(slept) >= 4  # one look per sleep; the first object was given
    assert all(seconds == 30 for seconds in slept)
    assert len(log.lines) == len(set(log.lines)) and log.lines[-1] == batches.describe(done)


def test_an_error_verdict_ends_the_wait_and_is_returned(emulator: Any) -> None:
    batch = create_batch()
    hook = OpenAIFilesHook()
    hook.cancel_batch(batch["id"])
    emulator.advance_clock(60)
    done, verdict = wait_until(
        lambda: hook.get_batch(batch["id"]),
        batches.judge,
        poll_interval=30,
        timeout=3600,
        describe=batches.describe,
        what="the batch",
        sleep=lambda _: pytest.fail("an ended object is not waited for"),
    )
    assert done["status"] == "cancelled" and verdict.state == "error" and polls(emulator, batch["id"]) == 1


def test_timeout_is_the_deadline_error_naming_the_object_and_its_last_status(emulator: Any) -> None:
    batch = create_batch()
    hook = OpenAIFilesHook()
    with pytest.raises(OpenAIFilesTimeoutError) as info:
        wait_until(
            lambda: hook.get_batch(batch["id"]),
            batches.judge,
            poll_interval=0.05,
            timeout=0.3,
            describe=batches.describe,
            what=f"batch {batch['id']} to finish",
        )
    message = str(info.value)
    assert message.startswith(f"Timed out after 0s waiting for batch {batch['id']} to finish (Batch {batch['id']} is ")
    assert not isinstance(info.value, AirflowFailException)  # may heal: a retry resumes the wait
    assert 2 <= polls(emulator, batch["id"]) <= 10  # polled at the interval, not in a busy loop
