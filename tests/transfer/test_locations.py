"""One location parser: the hook takes ``scheme://`` strings exactly as the operators do (issue 10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.transfer.sources import as_location
from tests.support.files import batch_lines, sha256


def test_location_strings(tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    assert isinstance(as_location("s3://aws_default@bucket/a.jsonl"), ObjectStoragePath)
    assert as_location(f"file://{tmp_path}/a.jsonl") == f"file://{tmp_path}/a.jsonl"  # a local path, resolved later
    assert as_location("relative/a.jsonl") == "relative/a.jsonl"


def test_hook_uploads_from_and_downloads_to_scheme_strings(openai_files_connection: Any, memory_fs: Any) -> None:
    body = batch_lines(4)
    with memory_fs.open("/bucket/in/requests.jsonl", "wb") as handle:
        handle.write(body)
    hook = OpenAIFilesHook()
    created = hook.upload_file("memory://bucket/in/requests.jsonl", "batch")
    assert created["filename"] == "requests.jsonl" and created["bytes"] == len(body)
    shown = hook.download_file(created["id"], "memory://bucket/out/requests.jsonl")
    # universal-pathlib < 0.3 (Airflow 3.1's pin) renders it "memory:///bucket/...": the same location.
    assert shown.replace(":///", "://") == "memory://bucket/out/requests.jsonl"
    assert memory_fs.cat_file("/bucket/out/requests.jsonl") == body
    assert sha256(openai_files_connection.content_path(created["id"])) == sha256(body)
    assert not Path("memory:").exists()  # the old bug: a local folder named after the scheme


def test_unregistered_scheme_is_a_validation_error(openai_files_connection: Any, tmp_path: Path) -> None:
    hook = OpenAIFilesHook()
    with pytest.raises(OpenAIFilesValidationError, match="attach") as info:
        hook.upload_file("nosuchscheme://bucket/a.jsonl", "user_data")
    assert isinstance(info.value, AirflowFailException)
    assert openai_files_connection.files() == []


def test_missing_filesystem_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_openai_files.transfer import sources as _io

    def no_s3fs(path: str) -> Any:
        raise ModuleNotFoundError("No module named 's3fs'", name="s3fs")

    import airflow.sdk

    monkeypatch.setattr(airflow.sdk, "ObjectStoragePath", no_s3fs)
    with pytest.raises(OpenAIFilesValidationError, match="s3fs") as info:
        _io.as_location("s3://aws_default@bucket/a.jsonl")
    assert "install" in str(info.value)
