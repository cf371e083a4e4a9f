"""A 404 is worded once, at the transports: the same class and words on the worker and the triggerer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_openai_files.client.errors import answer_error, not_found_text
from airflow_openai_files.exceptions import OpenAIFilesNotFoundError, OpenAIFilesRequestError, RetryableError
from airflow_openai_files.hooks import OpenAIFilesAsyncHook, OpenAIFilesHook
from airflow_openai_files.resources import batches, files, fine_tuning

CASES = [
    ("get_file", "file-nope", files.not_found_message("file-nope")),
    ("get_batch", "batch_nope", batches.not_found_message("batch_nope")),
    ("get_fine_tuning_job", "ftjob-nope", fine_tuning.not_found_message("ftjob-nope")),
]


@pytest.mark.parametrize(("method", "object_id", "words"), CASES, ids=[c[0] for c in CASES])
def test_sync_and_async_hooks_raise_the_same_not_found_error(
    openai_files_connection: Any, method: str, object_id: str, words: str
) -> None:
    with pytest.raises(OpenAIFilesNotFoundError) as sync_info:
        getattr(OpenAIFilesHook(), method)(object_id)

    async def ask() -> Any:
        async with OpenAIFilesAsyncHook() as hook:
            return await getattr(hook, method)(object_id)

    with pytest.raises(OpenAIFilesNotFoundError) as async_info:
        asyncio.run(ask())
    sync_err, async_err = sync_info.value, async_info.value
    assert words in sync_err.message and sync_err.message == async_err.message
    assert sync_err.http_status == async_err.http_status == 404
    assert sync_err.request_id and async_err.request_id and sync_err.request_id != async_err.request_id
    assert isinstance(sync_err, OpenAIFilesRequestError)  # final: fails the task on its first try


def test_paths_name_their_object() -> None:
    assert not_found_text("files/file-a/content") == files.not_found_message("file-a")
    assert not_found_text("/batches/batch_a/cancel") == batches.not_found_message("batch_a")
    assert not_found_text("fine_tuning/jobs/ftjob-a/events") == fine_tuning.not_found_message("ftjob-a")
    assert (text := not_found_text("uploads/upload_a/parts")) is not None and text.startswith("Upload upload_a ")
    assert not_found_text("files") is None and not_found_text("fine_tuning/jobs") is None


def test_a_missing_collection_is_not_worded_as_a_missing_object() -> None:
    err = answer_error(404, {}, b'{"error": {"message": "Resource not found"}}', what="Listing files", path="files")
    assert isinstance(err, OpenAIFilesNotFoundError)
    assert "Resource not found" in err.message and "host and flavor" in err.message


def test_a_404_the_server_says_to_retry_stays_retryable() -> None:
    err = answer_error(404, {"x-should-retry": "true"}, b"{}", what="Retrieving file-a", path="files/file-a")
    assert isinstance(err, RetryableError) and not isinstance(err, OpenAIFilesNotFoundError)
