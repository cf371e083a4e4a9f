"""``check_batch_file``: the batch input rules, streamed, with the file, line and rule in every refusal."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.validation import check_batch_file


def line(custom_id: Any = "a", **overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    }
    obj.update(overrides)
    return obj


def jsonl(*objs: Any) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(o).encode() + b"\n" for o in objs))


def test_valid_file_returns_its_request_count() -> None:
    assert check_batch_file(jsonl(line("a"), line("b"), line("c")), "/v1/chat/completions") == 3


@pytest.mark.parametrize(
    ("second", "rule"),
    [
        ({k: v for k, v in line("b").items() if k != "custom_id"}, "'custom_id' is missing"),
        (line(7), "'custom_id' must be a non-empty string"),
        (line("a"), "must be unique: 'a' was first used on line 1"),
        (line("b", method="GET"), "'method' must be 'POST'"),
        (line("b", url="/v1/embeddings"), "'url' must equal the batch's endpoint"),
        (line("b", body={"messages": []}), "'body.model' is missing"),
        (line("b", body={"model": "gpt-4o", "messages": []}), "one model per batch"),
        (line("b", body={"model": "gpt-4o-mini", "stream": True}), "'body.stream' must not be true"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_each_rule_names_file_and_line(second: Any, rule: str) -> None:
    with pytest.raises(OpenAIFilesValidationError) as info:
        check_batch_file(jsonl(line("a"), second), "/v1/chat/completions", name="requests.jsonl")
    assert "requests.jsonl, line 2: " in str(info.value)
    assert rule in str(info.value)


def test_not_json_and_limits() -> None:
    with pytest.raises(OpenAIFilesValidationError, match="line 2: not valid JSON"):
        check_batch_file(io.BytesIO(json.dumps(line()).encode() + b"\n{nope\n"), "/v1/chat/completions")
    with pytest.raises(OpenAIFilesValidationError, match="line 3: a batch holds at most 2 requests"):
        check_batch_file(jsonl(line("a"), line("b"), line("c")), "/v1/chat/completions", max_lines=2)
    data = jsonl(line("a"), line("b"))
    with pytest.raises(OpenAIFilesValidationError, match="line 2: the file exceeds the Batch API's limit of 200 bytes"):
        check_batch_file(data, "/v1/chat/completions", max_bytes=200)
    with pytest.raises(OpenAIFilesValidationError, match="no requests"):
        check_batch_file(io.BytesIO(b"\n\n"), "/v1/chat/completions")
    with pytest.raises(OpenAIFilesValidationError, match="Unknown batch endpoint '/v1/chat'"):
        check_batch_file(jsonl(line()), "/v1/chat")


def test_every_documented_endpoint_is_accepted() -> None:
    from airflow_openai_files.limits import BATCH_ENDPOINTS

    for endpoint in ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/moderations"):
        assert endpoint in BATCH_ENDPOINTS
        assert check_batch_file(jsonl(line(url=endpoint)), endpoint) == 1


def test_streams_without_readline() -> None:
    class NoReadline(io.BytesIO):
        def readline(self, *args: Any) -> bytes:  # type: ignore[override]
            raise AssertionError("readline must not be used")

    data = b"".join(json.dumps(line(f"r{i}")).encode() + b"\n" for i in range(2000))
    assert check_batch_file(NoReadline(data), "/v1/chat/completions") == 2000
