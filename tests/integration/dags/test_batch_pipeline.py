"""The ``openai_batch_pipeline`` example DAG end to end with ``dag.test()`` (the trigger runs inline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dags import test_example_dags as examples

# Long enough that the operator's first look sees the batch running and defers to the trigger.
pytestmark = [
    pytest.mark.openai_files_emulator(batch_validating_seconds=0.5, batch_in_progress_seconds=1.0),
    pytest.mark.slow,
]


def test_batch_pipeline(airflow_home: Path, openai_files_emulator: Any, tmp_path: Path) -> None:
    emu = openai_files_emulator
    staging = tmp_path / "staging"
    report = examples.run_dag(
        airflow_home, emu, staging, "openai_batch_pipeline.py", "batch_pipeline_dag", "2024-06-03"
    )
    assert report["state"] == "success", report["tasks"]
    assert report["tasks"] == {"build_requests": "success", "run_batch": "success", "join_results": "success"}
    assert "deferring: the triggerer checks it every" in report["log"]  # it waited in the trigger

    [batch] = emu.batches()  # exactly one batch, created from the file the DAG built
    assert batch["status"] == "completed"
    assert batch["metadata"]["pipeline"] == "openai_batch_pipeline" and batch["metadata"]["ds"] == "2024-06-03"
    folder = staging / "batch_pipeline" / "2024-06-03"
    requests = folder / "requests.jsonl"
    assert emu.content(batch["input_file_id"]) == requests.read_bytes()
    assert (folder / "output.jsonl").read_bytes() == emu.content(batch["output_file_id"])
    assert batch["error_file_id"] is None and not (folder / "errors.jsonl").exists()

    summary = examples.xcom(report, "run_batch")
    assert summary["batch_id"] == batch["id"] and summary["status"] == "completed"
    assert summary["request_counts"] == {"total": 30, "completed": 30, "failed": 0}
    joined = examples.xcom(report, "join_results")
    assert joined["joined"] == joined["succeeded"] == 30 and joined["batch_id"] == batch["id"]
    assert joined["failed"] == joined["missing"] == 0 and joined["output_tokens"] > 0
    ids = [json.loads(line)["custom_id"] for line in requests.read_text().splitlines()]
    assert ids == [f"R-{2001 + i}" for i in range(30)]
    assert f"Batch {batch['id']} completed: 30 of 30 reviews answered" in report["log"]
