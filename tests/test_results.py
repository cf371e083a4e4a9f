"""The results reader: output/error lines as dicts in constant memory, and the join to the input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.results import is_success, iter_results, join_by_custom_id


@pytest.fixture
def memory_fs() -> Iterator[Any]:
    """``memory://`` as an ObjectStoragePath scheme, emptied after the test (as in tests/operators)."""
    import fsspec
    from airflow.sdk.io.store import attach

    fs = fsspec.filesystem("memory")
    attach(protocol="memory", fs=fs)
    yield fs
    fs.store.clear()


def write(path: Path, objs: list[dict[str, Any]], newline_at_end: bool = True) -> Path:
    text = "\n".join(json.dumps(o) for o in objs) + ("\n" if newline_at_end else "")
    path.write_text(text)
    return path


def request(i: int, pad: int = 0) -> dict[str, Any]:
    body = {"model": "m", "input": f"x{i}" + " word" * pad}
    return {"custom_id": f"r{i}", "method": "POST", "url": "/v1/embeddings", "body": body}


def output(i: int, big: bool = False) -> dict[str, Any]:
    body = {"data": [{"embedding": [0.1] * (200 if big else 1)}]}
    return {"id": f"o{i}", "custom_id": f"r{i}", "response": {"status_code": 200, "body": body}, "error": None}


def error(i: int) -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "custom_id": f"r{i}",
        "response": {"status_code": 400, "body": {"error": {"message": "bad"}}},
        "error": None,
    }


def test_iter_results_local_and_object_storage(tmp_path: Path, memory_fs: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    objs = [output(i) for i in range(5)]
    path = write(tmp_path / "out.jsonl", objs, newline_at_end=False)
    assert list(iter_results(path)) == objs
    assert list(iter_results(str(path))) == objs
    assert list(iter_results(f"file://{path}")) == objs
    remote = ObjectStoragePath("memory://bucket/out.jsonl")
    remote.write_bytes(path.read_bytes())
    assert list(iter_results(remote)) == objs
    assert list(iter_results("memory://bucket/out.jsonl")) == objs


def test_iter_results_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps(output(1)) + "\n\n{broken\n")
    with pytest.raises(ValueError, match=r"out.jsonl, line 3: not valid JSON"):
        list(iter_results(path))


@pytest.mark.parametrize("big_results", [True, False], ids=["input-smaller", "results-smaller"])
def test_join_by_custom_id(tmp_path: Path, big_results: bool) -> None:
    inputs = write(tmp_path / "in.jsonl", [request(i, 0 if big_results else 100) for i in range(10)])
    # r0..r5 answered (shuffled order), r6..r7 errors, r8..r9 no line at all; r5 both (the error wins).
    outs = write(tmp_path / "out.jsonl", [output(i, big_results) for i in (3, 1, 5, 0, 2, 4)])
    errs = write(tmp_path / "err.jsonl", [error(i) for i in (7, 6, 5)])
    assert (outs.stat().st_size + errs.stat().st_size > inputs.stat().st_size) is big_results
    pairs = list(join_by_custom_id(inputs, outs, errs))
    assert all(req == request(int(req["custom_id"][1:]), 0 if big_results else 100) for req, _ in pairs)
    assert sorted(req["custom_id"] for req, _ in pairs) == [f"r{i}" for i in range(10)]
    by_id = {req["custom_id"]: result for req, result in pairs}
    for i in range(5):
        assert by_id[f"r{i}"] == output(i, big_results) and is_success(by_id[f"r{i}"])
    for i in (5, 6, 7):
        assert by_id[f"r{i}"] == error(i) and not is_success(by_id[f"r{i}"])
    assert by_id["r8"] is None and by_id["r9"] is None
    if not big_results:  # results indexed: the input is streamed, so pairs follow the input's order
        assert [req["custom_id"] for req, _ in pairs] == [f"r{i}" for i in range(10)]


def test_join_without_error_file(tmp_path: Path) -> None:
    inputs = write(tmp_path / "in.jsonl", [request(i) for i in range(3)])
    outs = write(tmp_path / "out.jsonl", [output(i) for i in range(3)])
    assert [(req["custom_id"], res["id"]) for req, res in join_by_custom_id(inputs, outs)] == [
        ("r0", "o0"),
        ("r1", "o1"),
        ("r2", "o2"),
    ]


@pytest.mark.slow
def test_reader_memory_stays_flat(tmp_path: Path) -> None:
    """40 MB of results read line by line: the peak traced allocation stays near one block and one line."""
    import tracemalloc

    path = tmp_path / "big.jsonl"
    line = json.dumps(output(0, big=True)).encode() + b"\n"
    with open(path, "wb") as handle:
        for _ in range((40 * 1024 * 1024) // len(line)):
            handle.write(line)
    tracemalloc.start()
    count = sum(1 for _ in iter_results(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count > 10_000
    assert peak < 8 * 1024 * 1024, peak
