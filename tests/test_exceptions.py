"""Exceptions: one module, a renamed status attribute, the fail-fast classes, and readable logs."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowException, AirflowFailException
from airflow_openai_files.exceptions import (
    OpenAIFilesConfigError,
    OpenAIFilesError,
    OpenAIFilesNotFoundError,
    OpenAIFilesRequestError,
    OpenAIFilesValidationError,
    settle,
)
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.transfer.progress import human_size, request_id_note
from tests.conftest import BASE_URL


def test_http_status_does_not_shadow_airflow_status_code() -> None:
    err = OpenAIFilesError("boom", http_status=503, request_id="req_1")
    assert err.http_status == 503
    assert err.status_code == AirflowException.status_code  # Airflow's own attribute, left alone
    with pytest.raises(TypeError):
        OpenAIFilesError("old keyword", status_code=404)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "cls", [OpenAIFilesValidationError, OpenAIFilesConfigError, OpenAIFilesRequestError, OpenAIFilesNotFoundError]
)
def test_errors_that_cannot_heal_fail_the_task_at_once(cls: type[OpenAIFilesError]) -> None:
    err = cls("nope", http_status=400)
    assert isinstance(err, AirflowFailException) and isinstance(err, OpenAIFilesError)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is cls and clone.http_status == 400 and str(clone) == str(err)


@pytest.mark.parametrize(
    ("status", "code", "fatal"),
    [
        (400, None, True),
        (401, None, True),
        (403, None, True),
        (404, None, True),
        (422, None, True),
        (429, "insufficient_quota", True),
        (409, None, False),
        (500, None, False),
        (503, None, False),
    ],
)
def test_settle_types_final_answers(status: int, code: str | None, fatal: bool) -> None:
    settled = settle(OpenAIFilesError("x", http_status=status, code=code))
    assert isinstance(settled, AirflowFailException) is fatal
    assert isinstance(settled, AirflowException) and settled.message == "x"


def test_sizes_are_written_for_people() -> None:
    assert human_size(11) == "11 bytes"
    assert human_size(3 * 1024 + 512) == "3.5 KiB"
    assert human_size(5 * 1024 * 1024) == "5.0 MiB"
    assert request_id_note(None) == "" and request_id_note("req_1") == ", request id req_1"


def test_logs_of_a_small_upload_show_bytes_and_no_request_id_none(
    mock_connection: str,
    requests_mock: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    source = tmp_path / "notes.txt"
    source.write_bytes(b"hello world")
    requests_mock.post(f"{BASE_URL}/files", json={"id": "file-1", "status": "processed", "bytes": 11})
    requests_mock.delete(f"{BASE_URL}/files/file-1", json={"id": "file-1", "deleted": True})
    hook = OpenAIFilesHook()
    with caplog.at_level("INFO"):
        hook.upload_file(source, "user_data")
        hook.delete_file("file-1")
    text = caplog.text + capsys.readouterr().out  # Airflow's structlog setup may write to stdout
    assert "Uploaded notes.txt" in text
    assert "11 bytes" in text and "0.0 MiB" not in text
    assert "request id None" not in text


def test_reading_settings_changes_nothing(mock_connection: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import set_connection

    set_connection(monkeypatch, extra={"max_retries": 2})
    hook = OpenAIFilesHook()
    before = hook.retry_policy.max_retries
    assert hook.settings.max_retries == 2
    assert hook.retry_policy.max_retries == before and hook.max_retries == 2
