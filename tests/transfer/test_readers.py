"""Every reader of the package over ``file://``, ``memory://`` and a real S3-compatible server (issue 16).

s3fs's file objects take no size argument to ``readline`` (and fsspec buffered files differ from
``io`` files in other small ways), so each reader runs over all three: JSONL validation before an
upload, the Batch API input check, and the batch results reader and join. Blocks of 1 MiB are read, so
the files here are made larger than a block, with lines that straddle block boundaries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.results import iter_results, join_by_custom_id
from airflow_openai_files.transfer.sources import resolve_source
from airflow_openai_files.validation import check_batch_file, check_jsonl, check_source
from tests.support.task_helpers import fine_tune_lines

PAD = "x" * 700  # ~2,000 lines of ~800 bytes: above the 1 MiB read block


def _requests(count: int) -> bytes:
    return b"".join(
        json.dumps(
            {
                "custom_id": f"req-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{i} {PAD}"}]},
            }
        ).encode()
        + b"\n"
        for i in range(count)
    )


def _outputs(ids: range) -> bytes:
    return b"".join(
        json.dumps(
            {
                "id": f"br-{i}",
                "custom_id": f"req-{i}",
                "response": {"status_code": 200, "body": {"n": i}},
                "error": None,
            }
        ).encode()
        + b"\n"
        for i in ids
    )


def _errors(ids: range) -> bytes:
    return b"".join(
        json.dumps({"id": f"be-{i}", "custom_id": f"req-{i}", "response": None, "error": {"code": "x"}}).encode()
        + b"\n"
        for i in ids
    )


class Store:
    """Writes bytes and names them as a location string of one filesystem."""

    def __init__(self, scheme: str, write: Any, url: Any) -> None:
        self.scheme, self._write, self._url = scheme, write, url

    def put(self, name: str, body: bytes) -> str:
        self._write(name, body)
        return str(self._url(name))


@pytest.fixture(params=["file", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "file":

        def write(name: str, body: bytes) -> None:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(body)

        yield Store("file", write, lambda name: f"file://{tmp_path / name}")
    elif request.param == "memory":
        import fsspec
        from airflow.sdk.io.store import attach

        fs = fsspec.filesystem("memory")
        attach(protocol="memory", fs=fs)

        def put(name: str, body: bytes) -> None:
            fs.pipe_file(f"/readers/{name}", body)

        yield Store("memory", put, lambda name: f"memory://readers/{name}")
        fs.store.clear()
    else:
        s3 = request.getfixturevalue("s3")  # tests/support/s3.py: moto server, a prefix per test
        yield Store("s3", s3.put, s3.url)


def _check(location: str, purpose: str) -> None:
    source = resolve_source(location)
    try:
        check_source(source, source.name or location, purpose, None, True)
    finally:
        source.close()


def test_jsonl_validation(store: Store) -> None:
    _check(store.put("ft/train.jsonl", fine_tune_lines(count=30)), "fine-tune")
    _check(store.put("batch/requests.jsonl", _requests(2000)), "batch")
    broken = _requests(1500) + b'{"custom_id": "req-1", "method": "POST"\n'
    with pytest.raises(OpenAIFilesValidationError, match="line 1501"):
        _check(store.put("batch/broken.jsonl", broken), "batch")


def test_long_line_is_reported_not_read_whole(store: Store) -> None:
    location = store.put("long/one.jsonl", b'{"a": "' + b"y" * (3 * 1024 * 1024) + b'"}\n')
    with resolve_source(location).open() as stream:
        problem = check_jsonl(stream, "batch", max_line_bytes=1024 * 1024)
    assert problem is not None and problem.line == 1 and "longer" in problem.reason


def test_batch_input_check(store: Store) -> None:
    with resolve_source(store.put("b/in.jsonl", _requests(2000))).open() as stream:
        assert check_batch_file(stream, "/v1/chat/completions") == 2000
    wrong = resolve_source(store.put("b/wrong.jsonl", _requests(1800)))
    with wrong.open() as stream, pytest.raises(OpenAIFilesValidationError, match=r"line 1: 'url'"):
        check_batch_file(stream, "/v1/responses")


def test_results_reader_and_join(store: Store) -> None:
    requests = store.put("r/in.jsonl", _requests(2000))
    outputs = store.put("r/out.jsonl", _outputs(range(0, 2000, 2)))
    errors = store.put("r/err.jsonl", _errors(range(1, 1999, 2)))
    assert [r["custom_id"] for r in iter_results(outputs)] == [f"req-{i}" for i in range(0, 2000, 2)]
    pairs = {request["custom_id"]: result for request, result in join_by_custom_id(requests, outputs, errors)}
    assert len(pairs) == 2000
    answered, failed = pairs["req-0"], pairs["req-1"]
    assert answered is not None and answered["response"]["body"] == {"n": 0}
    assert failed is not None and failed["error"] == {"code": "x"}
    assert pairs["req-1999"] is None
    # The other direction: results larger than the input are streamed, the input indexed.
    small = store.put("r/small.jsonl", _requests(3))
    joined = dict((q["custom_id"], r) for q, r in join_by_custom_id(small, outputs, errors))
    assert set(joined) == {"req-0", "req-1", "req-2"}
    assert (joined["req-2"] or {}).get("id") == "br-2"


def test_validated_upload_from_each_store(store: Store, openai_files_connection: Any) -> None:
    location = store.put("up/train.jsonl", fine_tune_lines(count=12, tag=store.scheme))
    created = OpenAIFilesHook().upload_file(location, "fine-tune")
    assert created["filename"] == "train.jsonl" and created["status"] == "processed"
