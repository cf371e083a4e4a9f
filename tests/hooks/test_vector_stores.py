"""The vector store methods of ``OpenAIFilesHook`` against the emulator: every page of every list, checks
before any request, one store after a lost answer, detach and delete tolerating what is already gone."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.limits import FILE_BATCH_MAX_FILES

pytestmark = pytest.mark.openai_files_emulator(vector_store_file_seconds=0)


def upload(hook: OpenAIFilesHook, tmp_path: Any, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(hook.upload_file(path, "assistants")["id"])


def test_lists_follow_every_page(openai_files_connection: Any, tmp_path: Any) -> None:
    hook = OpenAIFilesHook()
    stores = [hook.create_vector_store(f"s{i}") for i in range(3)]
    assert [s["id"] for s in hook.list_vector_stores(page_size=1, order="asc")] == [s["id"] for s in stores]
    ids = [upload(hook, tmp_path, f"d{i}.md", f"doc {i}") for i in range(5)]
    batch = hook.create_vector_store_file_batch(stores[0]["id"], file_ids=ids, attributes={"k": "v"})
    assert len(list(hook.list_vector_store_files(stores[0]["id"], page_size=2))) == 5
    files = list(hook.list_vector_store_file_batch_files(stores[0]["id"], batch["id"], page_size=2, status="completed"))
    assert sorted(f["id"] for f in files) == sorted(ids) and files[0]["attributes"] == {"k": "v"}
    gets = [p for m, p, _ in openai_files_connection.request_log() if m == "GET" and p.endswith("/files")]
    assert len(gets) >= 3 + 3  # three pages each


def test_refusals_come_before_any_request(openai_files_connection: Any) -> None:
    hook = OpenAIFilesHook()
    static = {"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}}
    with pytest.raises(OpenAIFilesValidationError, match="max_chunk_size_tokens"):
        hook.attach_vector_store_file("vs_abc", "file-abc", chunking_strategy=static)
    with pytest.raises(OpenAIFilesValidationError, match="2000 files"):
        hook.create_vector_store_file_batch("vs_abc", file_ids=[f"file-{i}" for i in range(FILE_BATCH_MAX_FILES + 1)])
    with pytest.raises(OpenAIFilesValidationError, match="at most 16"):
        hook.attach_vector_store_file("vs_abc", "file-abc", attributes={f"k{i}": 1 for i in range(17)})
    with pytest.raises(OpenAIFilesValidationError, match="max_num_results"):
        hook.search_vector_store("vs_abc", "q", max_num_results=0)
    with pytest.raises(OpenAIFilesValidationError, match="type must be one of"):
        hook.search_vector_store("vs_abc", "q", filters={"type": "like", "key": "a", "value": 1})
    with pytest.raises(OpenAIFilesValidationError, match="vector store"):
        hook.get_vector_store("vs_../../files")
    assert openai_files_connection.request_log() == []


def test_a_lost_create_answer_makes_one_store(openai_files_connection: Any) -> None:
    openai_files_connection.add_fault(method="POST", path="/v1/vector_stores", action="close_after_body", times=1)
    hook = OpenAIFilesHook()
    hook.retry_policy.sleep = lambda seconds: None
    store = hook.create_vector_store("once", metadata={"team": "docs"})
    assert [s["id"] for s in openai_files_connection.vector_stores()] == [store["id"]]
    assert store["metadata"]["team"] == "docs"


def test_detach_and_delete_tolerate_missing(openai_files_connection: Any, tmp_path: Any) -> None:
    hook = OpenAIFilesHook()
    store = hook.create_vector_store("tolerant")
    file_id = upload(hook, tmp_path, "a.md", "alpha")
    hook.attach_vector_store_file(store["id"], file_id, attributes={"n": 1})
    assert hook.update_vector_store_file(store["id"], file_id, {"n": 2})["attributes"] == {"n": 2}
    assert "alpha" in hook.get_vector_store_file_content(store["id"], file_id)
    assert hook.detach_vector_store_file(store["id"], file_id)["deleted"] is True
    assert hook.detach_vector_store_file(store["id"], file_id, missing_ok=True)["deleted"] is False
    with pytest.raises(OpenAIFilesError) as info:
        hook.detach_vector_store_file(store["id"], file_id)
    assert info.value.http_status == 404
    assert hook.delete_vector_store(store["id"])["deleted"] is True
    assert hook.delete_vector_store(store["id"], missing_ok=True)["deleted"] is False
