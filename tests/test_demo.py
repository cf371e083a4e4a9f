"""``make demo``'s summary says what happened, in full: where files landed, and nothing landed where none did."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import demo


def report(tmp: Path, output: Path, output_written: bool) -> dict[str, Any]:
    if output_written:
        output.write_text('{"custom_id": "r1"}\n')
    planned = {"requests_path": str(tmp / "requests.jsonl"), "output_path": str(output), "error_path": str(tmp / "e")}
    summary = {
        "batch_id": "batch_abc",
        "status": "completed",
        "request_counts": {"total": 1, "completed": 1, "failed": 0},
        "output_file_id": "file-out",
        "output_path": str(output) if output_written else None,
        "error_file_id": None,
        "error_path": None,
    }
    tasks = [
        {"task_id": t, "state": "success", "try_number": 1, "start": None, "end": None} for t in ("build", "score")
    ]
    return {
        "run_id": "manual__1",
        "state": "success",
        "tasks": tasks,
        "xcom": {"build": json.dumps(planned), "score": json.dumps(summary)},
    }


def test_paths_are_printed_in_full_and_landed_only_where_a_file_landed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "2024-06-01"
    deep.mkdir(parents=True)
    output = deep / "output.jsonl"
    assert demo.print_summary("openai_batch_pipeline", report(deep, output, True), "", date(2024, 6, 1))
    out = capsys.readouterr().out
    assert "..." not in out
    build, score = out.split("  build:")[1].split("  score:")
    # The task that only planned the paths says where results will land, never that they landed.
    assert f"output destination {output}\n" in build and f"errors destination {deep / 'e'}\n" in build
    assert "landed" not in build
    # The batch task: the output landed (with its size); no error file, and no "errors landed at".
    assert f"output landed at {output} (20 bytes)" in score
    assert "no errors file" in score and "errors landed" not in score
    assert 'requests {"total": 1, "completed": 1, "failed": 0}' in score
    assert "score.request_counts" not in out  # shown once, on its line


def test_a_missing_landing_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = demo.landing_lines({"batch_id": "batch_abc", "output_path": str(tmp_path / "gone.jsonl")})
    assert lines == [f"output expected at {tmp_path / 'gone.jsonl'}, but no file is there"]
    assert demo.landing_lines({"job_id": "ftjob-1", "results_path": None, "result_files": ["file-r"]}) == [
        "results file file-r left on the service"
    ]
