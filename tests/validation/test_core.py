"""airflow_openai_files.validation: the first problem of a JSONL file, found while streaming."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from airflow_openai_files.validation import PURPOSES, JsonlProblem, check_jsonl, describe
from tests.support.files import jsonl as encode_jsonl


def jsonl(*objs: Any) -> io.BytesIO:
    return io.BytesIO(encode_jsonl(objs))


CHAT = {
    "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": []},
    ]
}
PREF = {
    "input": {"messages": [{"role": "user", "content": "q"}]},
    "preferred_output": [{"role": "assistant", "content": "good"}],
    "non_preferred_output": [{"role": "assistant", "content": "bad"}],
}
LEGACY = {"prompt": "p", "completion": "c"}


def batch_line(i: int | str, **over: Any) -> dict[str, Any]:
    return {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": {}, **over}


def test_purposes() -> None:
    assert PURPOSES == ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


@pytest.mark.parametrize("example", [CHAT, PREF, LEGACY, {**CHAT, "tools": [], "parallel_tool_calls": False}])
def test_valid_fine_tune_formats(example: dict[str, Any]) -> None:
    assert check_jsonl(jsonl(*[example] * 10), "fine-tune") is None


def test_blank_lines_and_bom_are_fine() -> None:
    stream = io.BytesIO(b"\xef\xbb\xbf" + b"\n\n".join(json.dumps(CHAT).encode() for _ in range(10)) + b"\n\n  \n")
    assert check_jsonl(stream, "fine-tune") is None


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([CHAT] * 3, JsonlProblem(None, "fine-tune files need at least 10 examples, found 3")),
        ([CHAT, b"{nope"], JsonlProblem(2, "not valid JSON: Expecting property name enclosed in double quotes")),
        ([CHAT, b'{"a" 1}'], JsonlProblem(2, "not valid JSON: Expecting ':' delimiter")),
        ([b"[1, 2]"], JsonlProblem(1, "expected a JSON object, got list")),
        ([b"\xff\xfe{}"], JsonlProblem(1, "not valid UTF-8 (byte 0)")),
        ([{"messages": []}], JsonlProblem(1, "'messages' must be a non-empty list")),
        ([{"messages": ["hi"]}], JsonlProblem(1, "'messages'[0] must be an object")),
        ([{"messages": [{"content": "x"}]}], JsonlProblem(1, "'messages'[0] has no string 'role'")),
        (
            [{"messages": [{"role": "robot", "content": "x"}]}],
            JsonlProblem(1, "'messages'[0] has unknown role 'robot'"),
        ),
        (
            [{"messages": [{"role": "user", "content": 5}]}],
            JsonlProblem(1, "'messages'[0].content must be a string, a list or null"),
        ),
        ([{**CHAT, "tools": {}}], JsonlProblem(1, "'tools' must be a list")),
        ([{**CHAT, "parallel_tool_calls": "yes"}], JsonlProblem(1, "'parallel_tool_calls' must be a boolean")),
        ([{"prompt": "p"}], JsonlProblem(1, "'prompt' and 'completion' must both be strings")),
        ([{**PREF, "input": []}], JsonlProblem(1, "'input' must be an object")),
        ([{**PREF, "preferred_output": []}], JsonlProblem(1, "'preferred_output' must be a non-empty list")),
        (
            [{"text": "x"}],
            JsonlProblem(
                1,
                "not a fine-tuning example: expected 'messages', or 'input'/"
                "'preferred_output'/'non_preferred_output', or 'prompt'/'completion'",
            ),
        ),
        ([CHAT, LEGACY], JsonlProblem(2, "prompt/completion example in a file of chat examples (line 1)")),
    ],
)
def test_fine_tune_problems(lines: list[Any], expected: JsonlProblem) -> None:
    assert check_jsonl(jsonl(*lines), "fine-tune") == expected


def test_problem_is_reported_on_the_first_bad_line_only() -> None:
    stream = jsonl(*[CHAT] * 6, b"not json", {"messages": []})
    assert check_jsonl(stream, "fine-tune") == JsonlProblem(7, "not valid JSON: Expecting value")


def test_valid_batch() -> None:
    assert check_jsonl(jsonl(*(batch_line(i) for i in range(5))), "batch") is None


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [batch_line(1), batch_line(2), batch_line(1)],
            JsonlProblem(3, "duplicate custom_id 'r1' (first used on line 1)"),
        ),
        ([{**batch_line(1), "custom_id": ""}], JsonlProblem(1, "'custom_id' must be a non-empty string")),
        ([{**batch_line(1), "custom_id": 7}], JsonlProblem(1, "'custom_id' must be a non-empty string")),
        ([batch_line(1, method="GET")], JsonlProblem(1, "'method' must be 'POST', got 'GET'")),
        ([batch_line(1, url="/chat")], JsonlProblem(1, "'url' must be a string starting with '/v1/', got '/chat'")),
        ([batch_line(1, body=[])], JsonlProblem(1, "'body' must be an object")),
        ([], JsonlProblem(None, "batch file holds no requests")),
    ],
)
def test_batch_problems(lines: list[Any], expected: JsonlProblem) -> None:
    assert check_jsonl(jsonl(*lines), "batch") == expected


def test_batch_line_cap() -> None:
    stream = jsonl(*(batch_line(i) for i in range(6)))
    assert check_jsonl(stream, "batch", max_batch_lines=5) == JsonlProblem(6, "batch files may hold at most 5 requests")


@pytest.mark.parametrize("purpose", ["assistants", "vision", "user_data", "evals"])
def test_other_purposes_only_need_json_objects(purpose: str) -> None:
    assert check_jsonl(jsonl({"anything": 1}), purpose) is None
    assert check_jsonl(jsonl({"a": 1}, b"oops"), purpose) == JsonlProblem(2, "not valid JSON: Expecting value")


def test_overlong_line_is_reported_without_reading_it_whole() -> None:
    stream = io.BytesIO(b'{"a": "' + b"x" * 1000 + b'"}\n')
    assert check_jsonl(stream, "user_data", max_line_bytes=100) == JsonlProblem(1, "line longer than 100 bytes")


def test_streams_large_input_in_bounded_blocks() -> None:
    class CountingReader(io.BytesIO):
        biggest = 0

        def read(self, size: int | None = -1) -> bytes:
            assert size is not None and size > 0, "the whole file must never be read at once"
            chunk = super().read(size)
            CountingReader.biggest = max(CountingReader.biggest, len(chunk))
            return chunk

    line = json.dumps(CHAT).encode() + b"\n"
    reader = CountingReader(line * 20_000)
    assert check_jsonl(reader, "fine-tune") is None
    assert 0 < CountingReader.biggest <= 1024 * 1024


def test_reads_file_objects_whose_readline_takes_no_size() -> None:
    """s3fs-like file objects: ``readline()`` has no size parameter (issue 16); checking must still work."""

    class NoSizeReadline(io.BytesIO):
        def readline(self) -> bytes:  # type: ignore[override]
            return super().readline()

    good = NoSizeReadline(b"".join(json.dumps(CHAT).encode() + b"\n" for _ in range(10)))
    assert check_jsonl(good, "fine-tune") is None
    long_line = NoSizeReadline(b'{"a": "' + b"x" * 1000 + b'"}\n{"b": 1}\n')
    assert check_jsonl(long_line, "user_data", max_line_bytes=100) == JsonlProblem(1, "line longer than 100 bytes")
    exact = NoSizeReadline(b"x" * 100 + b"\n")
    assert check_jsonl(exact, "user_data", max_line_bytes=100) == JsonlProblem(1, "not valid JSON: Expecting value")


def test_describe() -> None:
    assert describe(JsonlProblem(7, "not valid JSON: Expecting ',' delimiter")) == (
        "line 7: not valid JSON: Expecting ',' delimiter"
    )
    assert describe(JsonlProblem(None, "fine-tune files need at least 10 examples, found 3")) == (
        "fine-tune files need at least 10 examples, found 3"
    )
