"""``s3://`` locations against a real S3-compatible server on loopback (moto's server mode, issue 10).

The hook and the operators take the same location strings and do the same thing with them: the bytes
that reach the emulator are the object's, the bytes that reach the bucket are the file's (sha256 on
both sides), a download appears only once complete and leaves no ``.part`` object behind, and without
``s3fs`` the answer is a validation error that says what to install.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.operators import OpenAIDownloadFileOperator, OpenAIUploadFileOperator
from tests.support.files import batch_lines, sha256
from tests.support.s3 import S3Prefix
from tests.support.task_helpers import make_context

BODY = batch_lines(40)  # a batch input: a purpose whose content can be downloaded again


def test_hook_and_operator_upload_the_same_object(openai_files_connection: Any, s3: S3Prefix) -> None:
    s3.put("in/requests.jsonl", BODY)
    emu = openai_files_connection

    by_hook = OpenAIFilesHook().upload_file(s3.url("in/requests.jsonl"), "batch")
    by_operator = OpenAIUploadFileOperator(
        task_id="upload", file_path=s3.url("in/requests.jsonl"), purpose="batch"
    ).execute(make_context())

    for created in (by_hook, by_operator):
        assert (created["filename"], created["bytes"], created["purpose"]) == ("requests.jsonl", len(BODY), "batch")
        assert sha256(emu.content_path(created["id"])) == sha256(BODY)
    assert s3.keys() == ["in/requests.jsonl"]  # the source is read, never touched


def test_hook_and_operator_download_the_same_bytes_and_leave_no_part(
    openai_files_connection: Any, s3: S3Prefix
) -> None:
    created = OpenAIFilesHook().upload_file(_local(openai_files_connection, BODY), "batch", filename="requests.jsonl")

    shown = OpenAIFilesHook().download_file(created["id"], s3.url("out/by-hook.jsonl"))
    result = OpenAIDownloadFileOperator(
        task_id="download", file_id=created["id"], destination=s3.url("out/by-operator.jsonl")
    ).execute(make_context())

    assert shown == s3.url("out/by-hook.jsonl") and result == s3.url("out/by-operator.jsonl")
    assert sha256(s3.get("out/by-hook.jsonl")) == sha256(s3.get("out/by-operator.jsonl")) == sha256(BODY)
    assert s3.keys() == ["out/by-hook.jsonl", "out/by-operator.jsonl"]  # no .part object left behind


def test_existing_object_is_kept_unless_overwrite(openai_files_connection: Any, s3: S3Prefix) -> None:
    created = OpenAIFilesHook().upload_file(_local(openai_files_connection, BODY), "batch", filename="requests.jsonl")
    s3.put("out.jsonl", b"old")

    for run in (
        lambda: OpenAIFilesHook().download_file(created["id"], s3.url("out.jsonl")),
        lambda: OpenAIDownloadFileOperator(
            task_id="download", file_id=created["id"], destination=s3.url("out.jsonl")
        ).execute(make_context()),
    ):
        with pytest.raises(OpenAIFilesValidationError, match="already exists"):
            run()
        assert s3.get("out.jsonl") == b"old"

    OpenAIFilesHook().download_file(created["id"], s3.url("out.jsonl"), overwrite=True)
    assert s3.get("out.jsonl") == BODY
    assert s3.keys() == ["out.jsonl"]


def test_refused_download_to_s3_writes_nothing(openai_files_connection: Any, s3: S3Prefix) -> None:
    created = OpenAIFilesHook().upload_file(_local(openai_files_connection, b"notes\n"), "user_data", filename="a.txt")
    with pytest.raises(AirflowFailException, match="has purpose 'user_data'"):
        OpenAIFilesHook().download_file(created["id"], s3.url("out/a.txt"))
    assert s3.keys() == []


def test_missing_object_is_a_validation_error(openai_files_connection: Any, s3: S3Prefix) -> None:
    with pytest.raises(OpenAIFilesValidationError, match="does not exist"):
        OpenAIFilesHook().upload_file(s3.url("nope.jsonl"), "batch")
    assert openai_files_connection.files() == []


@pytest.mark.parametrize("entry", ["hook.upload_file", "hook.download_file", "operator upload", "operator download"])
def test_missing_s3fs_names_what_to_install(
    openai_files_connection: Any, s3: S3Prefix, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    from airflow.sdk.io import store

    s3.put("in.jsonl", BODY)
    created = OpenAIFilesHook().upload_file(_local(openai_files_connection, BODY), "batch", filename="requests.jsonl")
    # s3fs "not installed": importing it fails, and no filesystem built earlier is reused.
    monkeypatch.setitem(sys.modules, "s3fs", None)
    monkeypatch.setattr(store, "_STORE_CACHE", {})
    for scheme in ("s3", "s3a"):  # fsspec's cache of imported filesystem classes
        monkeypatch.delitem(importlib.import_module("fsspec.registry")._registry, scheme, raising=False)
    before = len(openai_files_connection.request_log())
    run = {
        "hook.upload_file": lambda: OpenAIFilesHook().upload_file(s3.url("in.jsonl"), "batch"),
        "hook.download_file": lambda: OpenAIFilesHook().download_file(created["id"], s3.url("out.jsonl")),
        "operator upload": lambda: OpenAIUploadFileOperator(
            task_id="upload", file_path=s3.url("in.jsonl"), purpose="batch"
        ).execute(make_context()),
        "operator download": lambda: OpenAIDownloadFileOperator(
            task_id="download", file_id=created["id"], destination=s3.url("out.jsonl")
        ).execute(make_context()),
    }[entry]

    with pytest.raises(OpenAIFilesValidationError, match="s3fs") as info:
        run()

    assert isinstance(info.value, AirflowFailException)  # fails the task on its first try
    assert "pip install 'apache-airflow-providers-amazon[s3fs]'" in str(info.value)
    assert openai_files_connection.request_log()[before:] == []  # refused before any request
    assert s3.keys() == ["in.jsonl"]


def _local(emulator: Any, data: bytes) -> Any:
    """A local source file for seeding the emulator (beside its data, removed with it)."""
    path = emulator.data_dir / f"seed-{sha256(data)[:12]}"
    path.write_bytes(data)
    return path
