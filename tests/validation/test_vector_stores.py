"""The vector store checks the hook and the operator run before any request: the service's bounds."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.operators._vector_store_source import glob_regex
from airflow_openai_files.validation.vector_stores import (
    check_attributes,
    check_batch_entries,
    check_chunking_strategy,
    check_filters,
    check_store_expiry,
)


def static(size: int, overlap: int) -> dict[str, Any]:
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


@pytest.mark.parametrize("size, overlap", [(100, 50), (4096, 2048), (800, 0)])
def test_chunking_within_bounds(size: int, overlap: int) -> None:
    assert check_chunking_strategy(static(size, overlap)) == static(size, overlap)


@pytest.mark.parametrize("size, overlap", [(99, 0), (4097, 0), (800, 401), (800, -1), (True, 0)])
def test_chunking_out_of_bounds(size: int, overlap: int) -> None:
    with pytest.raises(OpenAIFilesValidationError):
        check_chunking_strategy(static(size, overlap))


def test_attributes_bounds() -> None:
    assert check_attributes({"a": "x" * 512, "b": True, "c": 1.5}) == {"a": "x" * 512, "b": True, "c": 1.5}
    assert check_attributes({f"k{i}": i for i in range(14)}, reserved=2) is not None
    for bad in ({f"k{i}": i for i in range(15)}, {"a": "x" * 513}, {"k" * 65: 1}, {"a": [1]}, {"a": float("nan")}):
        with pytest.raises(OpenAIFilesValidationError):
            check_attributes(bad, reserved=2)


def test_store_expiry() -> None:
    assert check_store_expiry(7) == {"anchor": "last_active_at", "days": 7}
    for bad in (0, 366, {"anchor": "created_at", "days": 1}, {"days": 1}):
        with pytest.raises(OpenAIFilesValidationError):
            check_store_expiry(bad)


def test_filters_nest() -> None:
    nested = {
        "type": "or",
        "filters": [{"type": "eq", "key": "a", "value": 1}, {"type": "in", "key": "b", "value": ["x"]}],
    }
    assert check_filters({"type": "and", "filters": [nested]}) is not None
    for bad in ({"type": "and", "filters": []}, {"type": "eq", "key": "a"}, {"type": "in", "key": "a", "value": "x"}):
        with pytest.raises(OpenAIFilesValidationError):
            check_filters(bad)


def test_batch_entries_exactly_one_form() -> None:
    assert check_batch_entries(["file-a"], None) == ("file_ids", ["file-a"])
    assert check_batch_entries(None, [{"file_id": "file-a", "attributes": {"k": 1}}])[0] == "files"
    for file_ids, files in ((None, None), (["file-a"], [{"file_id": "file-a"}]), ([], None), (None, [{"id": "x"}])):
        with pytest.raises(OpenAIFilesValidationError):
            check_batch_entries(file_ids, files)


@pytest.mark.parametrize(
    "pattern, path, selected",
    [
        ("**/*", "a.md", True),
        ("**/*", "x/y/a.md", True),
        ("**/*.md", "a.md", True),
        ("**/*.md", "x/a.txt", False),
        ("notes/**", "notes/a/b.md", True),
        ("notes/**", "other/a.md", False),
        ("*.md", "x/a.md", False),
        ("?.md", "a.md", True),
    ],
)
def test_globs(pattern: str, path: str, selected: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is selected
