"""The Batch API methods of the sync hook, against the emulator (and requests-mock for wire details)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests_mock as requests_mock_module

from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesRequestError, OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.resume import REQUEST_KEY_METADATA
from tests.conftest import BASE_URL
from tests.support.files import batch_lines


@pytest.fixture
def hook(openai_files_connection: Any) -> Iterator[OpenAIFilesHook]:
    hook = OpenAIFilesHook(max_retries=3)
    hook.retry_policy.sleep = lambda seconds: None  # type: ignore[method-assign]  # no real waits
    yield hook
    hook.close()


def upload_input(hook: OpenAIFilesHook, count: int = 3) -> str:
    return str(hook.upload_file(io.BytesIO(batch_lines(count)), "batch", filename="in.jsonl")["id"])


def test_lifecycle_create_get_list(hook: OpenAIFilesHook, openai_files_connection: Any) -> None:
    emu = openai_files_connection
    file_id = upload_input(hook)
    created = hook.create_batch(file_id, "/v1/chat/completions", metadata={"team": "support"})
    assert created["id"].startswith("batch_") and created["status"] == "validating"
    assert created["metadata"]["team"] == "support"
    assert len(created["metadata"][REQUEST_KEY_METADATA]) == 32
    done = hook.get_batch(created["id"])  # the emulator's default durations are zero
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    assert done["output_file_id"] and done["error_file_id"] is None
    assert [b["id"] for b in hook.list_batches()] == [created["id"]]
    assert [b["id"] for b in emu.batches()] == [created["id"]]


def test_list_batches_follows_every_page(hook: OpenAIFilesHook) -> None:
    file_id = upload_input(hook, 1)
    ids = [hook.create_batch(file_id, "/v1/chat/completions")["id"] for _ in range(5)]
    listed = [b["id"] for b in hook.list_batches(page_size=2)]
    assert sorted(listed) == sorted(ids) and len(listed) == 5
    with pytest.raises(OpenAIFilesValidationError, match="page_size"):
        hook.list_batches(page_size=101)


def test_cancel_batch(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_openai_files.emulator import Emulator

    with Emulator(data_dir=tmp_path / "emu", batch_in_progress_seconds=3600, batch_cancelling_seconds=0) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_OPENAI_FILES_DEFAULT", emu.airflow_connection())
        hook = OpenAIFilesHook()
        batch = hook.create_batch(upload_input(hook), "/v1/chat/completions")
        assert hook.get_batch(batch["id"])["status"] == "in_progress"
        assert hook.cancel_batch(batch["id"])["status"] in ("cancelling", "cancelled")
        assert hook.get_batch(batch["id"])["status"] == "cancelled"
        with pytest.raises(OpenAIFilesRequestError):  # a finished batch cannot be cancelled: fatal, not retried
            hook.cancel_batch(batch["id"])


def test_create_after_lost_answer_returns_the_batch_it_created(
    hook: OpenAIFilesHook, openai_files_connection: Any
) -> None:
    emu = openai_files_connection
    file_id = upload_input(hook)
    # The service creates the batch, then the connection drops before the answer: ambiguous.
    emu.add_fault(method="POST", path="/v1/batches", action="close_after_body", times=1)
    batch = hook.create_batch(file_id, "/v1/chat/completions")
    assert [b["id"] for b in emu.batches()] == [batch["id"]]  # exactly one, not two
    posts = [r for r in emu.request_log() if r[0] == "POST" and r[1] == "/v1/batches"]
    assert len(posts) == 1  # the retry listed instead of sending again


def test_create_after_unambiguous_failure_sends_again(hook: OpenAIFilesHook, openai_files_connection: Any) -> None:
    emu = openai_files_connection
    file_id = upload_input(hook)
    emu.add_fault(method="POST", path="/v1/batches", status=429, times=1)  # rate limited: never processed
    batch = hook.create_batch(file_id, "/v1/chat/completions")
    assert [b["id"] for b in emu.batches()] == [batch["id"]]
    assert not any(r[0] == "GET" and r[1] == "/v1/batches" for r in emu.request_log())  # no lookup needed


def test_create_batch_checks_input_before_any_request(mock_connection: str) -> None:
    hook = OpenAIFilesHook()
    with requests_mock_module.Mocker() as mocker:
        with pytest.raises(OpenAIFilesValidationError, match="Unknown batch endpoint"):
            hook.create_batch("file-abc", "/v1/chat")
        with pytest.raises(OpenAIFilesValidationError, match="completion_window"):
            hook.create_batch("file-abc", "/v1/embeddings", completion_window="1h")
        with pytest.raises(OpenAIFilesValidationError, match="at most 15 are free"):
            hook.create_batch("file-abc", "/v1/embeddings", metadata={f"k{i}": "v" for i in range(16)})
        with pytest.raises(OpenAIFilesValidationError, match="expires_after_seconds"):
            hook.create_batch("file-abc", "/v1/embeddings", output_expires_after_seconds=60)
        with pytest.raises(OpenAIFilesValidationError, match="Invalid batch id"):
            hook.get_batch("../files")
        assert mocker.call_count == 0


def test_create_batch_wire_format(mock_connection: str) -> None:
    hook = OpenAIFilesHook()
    with requests_mock_module.Mocker() as mocker:
        mocker.post(f"{BASE_URL}/batches", json={"id": "batch_1", "status": "validating"})
        hook.create_batch("file-abc", "/v1/embeddings", metadata={"a": "b"}, output_expires_after_seconds=7200)
        sent = json.loads(mocker.last_request.body)
    assert sent["input_file_id"] == "file-abc" and sent["endpoint"] == "/v1/embeddings"
    assert sent["completion_window"] == "24h"
    assert sent["output_expires_after"] == {"anchor": "created_at", "seconds": 7200}
    assert sent["metadata"]["a"] == "b" and set(sent["metadata"]) == {"a", REQUEST_KEY_METADATA}


def test_get_batch_404_is_fatal(mock_connection: str) -> None:
    hook = OpenAIFilesHook()
    with requests_mock_module.Mocker() as mocker:
        mocker.get(
            f"{BASE_URL}/batches/batch_gone",
            status_code=404,
            json={"error": {"message": "No batch found", "type": "invalid_request_error", "code": None}},
            headers={"x-request-id": "req_1"},
        )
        with pytest.raises(OpenAIFilesRequestError, match="Retrieving batch_gone") as info:
            hook.get_batch("batch_gone")
        assert mocker.call_count == 1  # never retried
    assert info.value.http_status == 404 and info.value.request_id == "req_1"


def test_get_batch_retries_server_errors(mock_connection: str) -> None:
    hook = OpenAIFilesHook(max_retries=2)
    hook.retry_policy.sleep = lambda seconds: None  # type: ignore[method-assign]
    with requests_mock_module.Mocker() as mocker:
        mocker.get(
            f"{BASE_URL}/batches/batch_1",
            [{"status_code": 503, "json": {"error": {"message": "busy"}}}, {"json": {"id": "batch_1"}}],
        )
        assert hook.get_batch("batch_1") == {"id": "batch_1"}
        assert mocker.call_count == 2
        mocker.get(f"{BASE_URL}/batches/batch_2", status_code=503, json={"error": {"message": "busy"}})
        with pytest.raises(OpenAIFilesError, match="gave up after 3 attempt"):
            hook.get_batch("batch_2")
