"""The mapping and XCom patterns of docs/operators.md, run with dag.test() against the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dags.test_example_dags import RUNNER
from tests.support.airflow_db import airflow_env

DAG_FILE = Path(__file__).with_name("dags") / "openai_mapping.py"


pytestmark = [pytest.mark.openai_files_emulator(processing_delay=0.5), pytest.mark.slow]


def test_mapping_patterns_run(airflow_home: Path, openai_files_emulator: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = airflow_env(airflow_home)
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAG_FILE.parent)
    env["OPENAI_FILES_STAGING"] = f"file://{tmp_path / 'staging'}"
    env["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"] = openai_files_emulator.airflow_connection()
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(DAG_FILE), "dag", "2024-06-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    # Reading a mapped task's lazy output (delete_all takes every upload) must not read past its end:
    # each read past it logged "[error] XCom not found ... offset=3" in a run that succeeded (issue 22).
    output = done.stdout + done.stderr
    assert "XCom not found" not in output, [line for line in output.splitlines() if "XCom not found" in line]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["state"] == "success", (report["tasks"], report["mapped"], done.stdout[-3000:])

    def value(raw: Any) -> Any:
        return json.loads(raw) if isinstance(raw, str) and raw[:1] in "[{" else raw

    uploads = {int(i): value(e["xcom"]) for i, e in report["mapped"]["upload"].items()}
    assert sorted(uploads) == [0, 1, 2]
    ids = [uploads[i]["id"] for i in range(3)]
    for waiter in ("wait_dicts", "wait_ids"):
        waited = report["mapped"][waiter]
        assert {e["state"] for e in waited.values()} == {"success"}, waiter
        assert [value(waited[str(i)]["xcom"])["id"] for i in range(3)] == ids
        assert all(value(waited[str(i)]["xcom"])["status"] == "processed" for i in range(3))
    one = value(report["xcom"]["upload_one"])
    assert value(report["xcom"]["wait_rendered"])["id"] == one["id"]
    assert sorted(value(report["xcom"]["delete_all"])) == sorted(ids)
    # End state on the service: the mapped uploads are gone, the single one is there and processed.
    assert [f["id"] for f in openai_files_emulator.files()] == [one["id"]]
