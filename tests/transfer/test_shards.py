"""Splitting a batch job into shard files, the token estimate, and merging results in the input's order."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.emulator.batches.model import estimate_tokens as emulator_tokens
from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.transfer.merge import ERROR, OUTPUT, ResultMerger
from airflow_openai_files.transfer.shards import ShardLimits, estimate_tokens, split_input
from airflow_openai_files.validation import check_batch_file

ENDPOINT = "/v1/chat/completions"


def request(i: int, words: int = 3) -> dict[str, Any]:
    content = " ".join(f"w{i:05d}_{n}" for n in range(words))
    return {
        "custom_id": f"id-{i}",
        "method": "POST",
        "url": ENDPOINT,
        "body": {"model": "m", "messages": [{"role": "user", "content": content}]},
    }


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def split(tmp_path: Path, data: bytes, **limits: Any) -> Any:
    return split_input(io.BytesIO(data), ENDPOINT, tmp_path / "work", ShardLimits(**limits))


def test_split_on_line_limit_keeps_order_and_bytes(tmp_path: Path) -> None:
    data = jsonl([request(i) for i in range(23)])
    result = split(tmp_path, data, max_lines=5)
    assert [s.lines for s in result.shards] == [5, 5, 5, 5, 3]
    assert [s.first_line for s in result.shards] == [0, 5, 10, 15, 20]
    assert b"".join(s.path.read_bytes() for s in result.shards) == data
    for shard in result.shards:  # each shard is a valid batch file on its own
        with open(shard.path, "rb") as stream:
            assert check_batch_file(stream, ENDPOINT) == shard.lines
    assert result.lines == 23 and result.bytes == len(data) and result.model == "m"


def test_split_on_byte_limit(tmp_path: Path) -> None:
    rows = [request(i) for i in range(20)]
    size = len(json.dumps(rows[0]).encode()) + 1
    limit = 3 * size + 2
    result = split(tmp_path, jsonl(rows), max_bytes=limit)
    assert all(s.bytes <= limit for s in result.shards)
    assert sum(s.lines for s in result.shards) == 20 and len(result.shards) > 5
    for shard, following in zip(result.shards, result.shards[1:], strict=False):  # each shard is as full as it can be
        next_line = following.path.read_bytes().splitlines(keepends=True)[0]
        assert shard.bytes + len(next_line) > limit


def test_split_on_token_budget(tmp_path: Path) -> None:
    rows = [request(i, words=10) for i in range(12)]
    per_line = estimate_tokens(rows[0]["body"])
    result = split(tmp_path, jsonl(rows), max_tokens=4 * per_line)
    assert [s.lines for s in result.shards] == [4, 4, 4]
    assert all(s.tokens <= 4 * per_line for s in result.shards)


def test_a_line_over_the_budget_is_refused(tmp_path: Path) -> None:
    rows = [request(0), request(1, words=200)]
    with pytest.raises(OpenAIFilesValidationError, match=r"line 2: a request estimated at .* tokens cannot fit"):
        split(tmp_path, jsonl(rows), max_tokens=50)


def test_blank_lines_dropped_crlf_and_no_final_newline_kept_valid(tmp_path: Path) -> None:
    data = json.dumps(request(0)).encode() + b"\r\n\n" + json.dumps(request(1)).encode()
    result = split(tmp_path, data, max_lines=1)
    assert [s.lines for s in result.shards] == [1, 1]
    assert result.shards[1].path.read_bytes().endswith(b"}\n")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([request(0), request(1), request(0)], r"line 3: 'custom_id' must be unique across the job: 'id-0'.*line 1"),
        ([request(0), {**request(1), "custom_id": None}], r"line 2: 'custom_id' is missing"),
        ([request(0), {**request(1), "url": "/v1/embeddings"}], r"line 2: 'url' must equal"),
        ([request(0), {**request(1), "body": {"model": "other", "messages": []}}], r"line 2: one model per batch"),
    ],
    ids=["duplicate", "missing", "url", "model"],
)
def test_bad_input_refused(tmp_path: Path, rows: list[dict[str, Any]], match: str) -> None:
    with pytest.raises(OpenAIFilesValidationError, match=match):
        split(tmp_path, jsonl(rows), max_lines=1)


def test_duplicate_far_apart_across_shards_is_found(tmp_path: Path) -> None:
    rows = [request(i) for i in range(12_000)] + [request(17)]
    with pytest.raises(OpenAIFilesValidationError, match=r"line 12001: .*'id-17' was first used on line 18"):
        split(tmp_path, jsonl(rows), max_lines=1000)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": [{"role": "user", "content": "a b c d e f g"}]},
        {"model": "m", "messages": [{"role": "system", "content": "x" * 400}, {"role": "user", "content": "hé"}]},
        {"model": "m", "input": "one two three", "instructions": "be brief"},
        {"model": "m", "prompt": ["a", "b c"]},
    ],
)
def test_estimate_is_never_below_the_emulators_count(body: dict[str, Any]) -> None:
    # The emulator counts words of every string (its stand-in tokenizer); the service counts real tokens,
    # about four characters each: the estimate must not be below either.
    estimate = estimate_tokens(body)
    assert estimate >= emulator_tokens(body)
    text = json.dumps(body.get("messages") or body.get("input") or body.get("prompt"))
    assert estimate >= len(text) // 4 - 8


def result_line(custom_id: str, status: int = 200, tokens: tuple[int, int, int] = (3, 5, 1)) -> dict[str, Any]:
    usage = {
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
        "prompt_tokens_details": {"cached_tokens": tokens[2]},
    }
    return {
        "id": f"r-{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": status, "body": {"usage": usage}},
    }


def test_merge_restores_input_order_and_drops_superseded_errors(tmp_path: Path) -> None:
    rows = [request(i) for i in range(6)]
    result = split(tmp_path, jsonl(rows), max_lines=3)
    index = tmp_path / "work" / "ids.sqlite"
    first_out = tmp_path / "o1.jsonl"
    first_out.write_bytes(jsonl([result_line("id-2"), result_line("id-0")]))  # the service's order
    first_err = tmp_path / "e1.jsonl"
    first_err.write_bytes(jsonl([result_line("id-1", 429)]))  # sent again, answered below
    second_out = tmp_path / "o2.jsonl"
    second_out.write_bytes(jsonl([result_line("id-5"), result_line("id-3"), result_line("id-1")]))
    second_err = tmp_path / "e2.jsonl"
    second_err.write_bytes(jsonl([result_line("id-4", 400)]))
    merger = ResultMerger(index, tmp_path / "spool")
    merger.add_file(first_out, OUTPUT)
    merger.add_file(first_err, ERROR, skip=lambda line: line["response"]["status_code"] == 429)
    merger.add_file(second_out, OUTPUT)
    merger.add_file(second_err, ERROR)
    assert merger.missing() == (0, [])
    out, err = io.BytesIO(), io.BytesIO()
    assert merger.write_kind(OUTPUT, out) == 5 and merger.write_kind(ERROR, err) == 1
    merger.close()
    assert [json.loads(x)["custom_id"] for x in out.getvalue().splitlines()] == ["id-0", "id-1", "id-2", "id-3", "id-5"]
    assert [json.loads(x)["custom_id"] for x in err.getvalue().splitlines()] == ["id-4"]
    assert merger.usage == [15, 25, 5]
    assert len(result.shards) == 2


def test_merge_reports_missing_ids(tmp_path: Path) -> None:
    split(tmp_path, jsonl([request(i) for i in range(4)]), max_lines=2)
    out = tmp_path / "o.jsonl"
    out.write_bytes(jsonl([result_line("id-0"), result_line("id-3")]))
    merger = ResultMerger(tmp_path / "work" / "ids.sqlite", tmp_path / "spool")
    merger.add_file(out, OUTPUT)
    assert merger.missing() == (2, ["id-1", "id-2"])
    merger.close()
