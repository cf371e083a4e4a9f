"""Issue 12: errors that cannot heal fail the task on its first try; inputs are checked once, early."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.exceptions import (
    OpenAIFilesConfigError,
    OpenAIFilesError,
    OpenAIFilesRequestError,
    OpenAIFilesValidationError,
)
from airflow_openai_files.operators import (
    OpenAIDeleteFileOperator,
    OpenAIDownloadFileOperator,
    OpenAIFilesCleanupOperator,
    OpenAIUploadFileOperator,
)
from tests.support.connections import set_connection
from tests.support.task_helpers import make_context

BAD_KEY = {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}


def test_upload_with_a_refused_key_fails_without_airflow_retries(
    openai_files_connection: Any, fine_tune_file: Path
) -> None:
    emu = openai_files_connection
    emu.add_fault(method="POST", path="/v1/files", times=1, status=401, error=BAD_KEY)
    op = OpenAIUploadFileOperator(task_id="u", file_path=str(fine_tune_file), purpose="fine-tune")
    with pytest.raises(AirflowFailException) as info:
        op.execute(make_context())
    assert isinstance(info.value, OpenAIFilesRequestError) and info.value.http_status == 401
    assert str(info.value).startswith("Uploading train.jsonl failed with HTTP 401")


def test_a_retried_try_says_the_same_as_the_first(openai_files_connection: Any, fine_tune_file: Path) -> None:
    """Try 2 first looks for try 1's file; a 401 there must still read 'Uploading ... failed'."""
    emu = openai_files_connection
    emu.add_fault(method="GET", path="/v1/files", times=1, status=401, error=BAD_KEY)
    op = OpenAIUploadFileOperator(task_id="u", file_path=str(fine_tune_file), purpose="fine-tune")
    started = datetime.now(timezone.utc) - timedelta(minutes=1)
    with pytest.raises(AirflowFailException, match=r"^Uploading train\.jsonl failed with HTTP 401"):
        op.execute(make_context(try_number=2, run_start=started))


def test_download_of_a_missing_file_fails_fast(openai_files_connection: Any, tmp_path: Path) -> None:
    op = OpenAIDownloadFileOperator(task_id="d", file_id="file-doesnotexist", destination=str(tmp_path / "x"))
    with pytest.raises(AirflowFailException) as info:
        op.execute(make_context())
    assert info.value.http_status == 404  # type: ignore[attr-defined]


def test_server_errors_after_the_budget_are_left_to_airflow_retries(openai_files_connection: Any) -> None:
    emu = openai_files_connection
    emu.add_fault(method="DELETE", path="/v1/files/*", times=100, status=503)
    op = OpenAIDeleteFileOperator(task_id="d", file_id="file-abc", missing_ok=False)
    op.hook.retry_policy.sleep = lambda _s: None
    with pytest.raises(OpenAIFilesError) as info:
        op.execute(make_context())
    assert not isinstance(info.value, AirflowFailException)
    assert info.value.http_status == 503 and "gave up after" in str(info.value)


def test_missing_connection_and_empty_key_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NOWHERE", raising=False)
    with pytest.raises(AirflowFailException) as missing:
        OpenAIDeleteFileOperator(task_id="d", file_id="file-a", openai_conn_id="nowhere").execute(make_context())
    assert isinstance(missing.value, OpenAIFilesConfigError)
    set_connection(monkeypatch, "emptykey", host="http://127.0.0.1:9/v1", password="")
    with pytest.raises(AirflowFailException, match="API Key"):
        OpenAIDeleteFileOperator(task_id="d", file_id="file-a", openai_conn_id="emptykey").execute(make_context())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"purpose": "finetune"}, "did you mean 'fine-tune'"),
        ({"purpose": "Fine-Tune"}, "Unknown purpose"),
        ({"purpose": "batch_output"}, "Unknown purpose"),  # the service creates those; never an upload's
        ({"purpose": "fine-tune", "expires_after_seconds": 7_776_000}, "expires_after_seconds"),
        ({"purpose": "fine-tune", "expires_after_seconds": "soon"}, "whole number"),
    ],
)
def test_literal_upload_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(OpenAIFilesValidationError, match=message) as info:
        OpenAIUploadFileOperator(task_id="up", file_path="/data/train.jsonl", **kwargs)
    assert isinstance(info.value, AirflowFailException) and str(info.value).startswith("up: ")


def test_templated_upload_arguments_fail_at_the_start_of_the_task(fine_tune_file: Path) -> None:
    op = OpenAIUploadFileOperator(
        task_id="up", file_path=str(fine_tune_file), purpose="{{ params.p }}", expires_after_seconds="{{ params.e }}"
    )
    context = make_context(params={"p": "finetune", "e": "3600"})
    op.render_template_fields(context)
    with pytest.raises(AirflowFailException, match="did you mean 'fine-tune'"):
        op.execute(context)  # no connection needed: refused before any request


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"purpose": "finetune"}, "Unknown purpose"),
        ({"purpose": "fine_tune"}, "Unknown purpose"),
        ({"older_than": "7 days"}, "not a duration"),
        ({"older_than": "0"}, "positive"),
        ({"older_than": 0}, "positive"),
        ({"filename_glob": "*"}, "matches everything"),
        ({"filename_glob": "  "}, "at least one of"),
    ],
)
def test_cleanup_filters_that_are_wrong_or_match_everything_are_refused_at_parse(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(OpenAIFilesValidationError, match=message):
        OpenAIFilesCleanupOperator(task_id="c", **kwargs)


@pytest.mark.parametrize("purpose", ["batch_output", "fine-tune-results", "assistants_output", "fine-tune"])
def test_cleanup_accepts_service_created_purposes(purpose: str) -> None:
    assert OpenAIFilesCleanupOperator(task_id="c", purpose=purpose).purpose == purpose


def test_templated_cleanup_filters_are_checked_when_rendered() -> None:
    op = OpenAIFilesCleanupOperator(task_id="c", purpose="{{ params.p }}", older_than="{{ params.age }}")
    context = make_context(params={"p": "batch", "age": "0"})
    op.render_template_fields(context)
    with pytest.raises(AirflowFailException, match="positive"):
        op.execute(context)
