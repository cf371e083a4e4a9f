"""A DAG with ``retries=2``: every deterministic error fails on try 1; a refused connection is retried (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dags.test_example_dags import RUNNER
from tests.support.airflow_db import airflow_env
from tests.support.connections import free_port
from tests.support.task_helpers import fine_tune_lines

DAG_FILE = Path(__file__).with_name("dags") / "openai_fail_fast.py"


pytestmark = [pytest.mark.openai_files_emulator(api_key="sk-the-right-key"), pytest.mark.slow]


def test_deterministic_errors_fail_on_try_one(openai_files_emulator: Any, airflow_home: Path, tmp_path: Path) -> None:
    files = tmp_path / "inputs"
    files.mkdir()
    (files / "ok.txt").write_text("hello\n")
    (files / "train.json").write_bytes(fine_tune_lines(12))
    (files / "five.jsonl").write_bytes(fine_tune_lines(5))
    home = airflow_home
    env = airflow_env(home)
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAG_FILE.parent)
    env["OPENAI_FILES_FAIL_FAST_DIR"] = str(files)
    good = json.loads(openai_files_emulator.airflow_connection(max_retries=0))
    conns = {
        "EMPTY_KEY": {**good, "password": ""},
        "BAD_KEY": {**good, "password": "sk-wrong"},
        "BAD_PATH": {**good, "host": openai_files_emulator.base_url.replace("/v1", "/nope")},
        "BAD_PORT": {**good, "host": f"http://127.0.0.1:{free_port()}/v1"},
    }
    for name, value in conns.items():
        env[f"AIRFLOW_CONN_{name}"] = json.dumps(value)
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(DAG_FILE), "dag", "2024-06-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    deterministic = [
        "misspelled_purpose",
        "json_fine_tune_file",
        "five_examples",
        "missing_connection",
        "empty_key",
        "refused_key_401",
        "base_url_404",
    ]
    assert {task: report["tasks"][task] for task in deterministic} == dict.fromkeys(deterministic, "failed")
    assert {task: report["tries"][task] for task in deterministic} == dict.fromkeys(deterministic, 1)
    # The control: a refused connection can heal, so Airflow's retries ran (try 3 of 3).
    assert report["tasks"]["control_wrong_port"] == "failed"
    assert report["tries"]["control_wrong_port"] == 3
    assert openai_files_emulator.files() == []
