"""The ``openai_batch_pipeline`` DAG under real Airflow processes: api-server, scheduler, triggerer.

The scheduler creates the ``@daily`` run itself; ``run_batch`` defers and a real triggerer, importing
``airflow_openai_files.triggers.OpenAIBatchTrigger`` from the package, resumes it when the emulator's
batch completes. Only this DAG is in the DAGs folder (symlinks to the example and its data).
Everything listens on 127.0.0.1 and every process started here is stopped at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_real_airflow import REPO, Processes, free_port, query, wait_for

DAG_ID = "openai_batch_pipeline"
TASK = "run_batch"

pytestmark = [
    pytest.mark.openai_files_emulator(batch_validating_seconds=2.0, batch_in_progress_seconds=4.0),
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(300),
]


def test_batch_dag_under_scheduler_and_triggerer(tmp_path: Path, openai_files_emulator: Any) -> None:
    emu = openai_files_emulator
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "openai_batch_pipeline.py").symlink_to(REPO / "dags_examples" / "openai_batch_pipeline.py")
    (dags / "data").symlink_to(REPO / "dags_examples" / "data")
    home = tmp_path / "airflow_home"
    home.mkdir()
    staging = tmp_path / "staging"
    db = home / "airflow.db"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        PYTHONPATH=str(REPO),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{db}",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(32),
        AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL="1",
        AIRFLOW_CONN_OPENAI_FILES_DEFAULT=emu.airflow_connection(),
        OPENAI_FILES_STAGING=f"file://{staging}",
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    for args in (["db", "migrate"], ["dags", "reserialize"]):
        done = subprocess.run([airflow, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    procs = Processes(env, tmp_path)
    try:
        procs.start("api-server", "api-server", "--port", str(port))

        def healthy() -> bool:
            procs.check_alive()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_for("the api-server to be healthy", healthy, timeout=90)
        procs.start("scheduler", "scheduler", "--skip-serve-logs")
        procs.start("triggerer", "triggerer", "--skip-serve-logs")

        seen_states: set[str] = set()

        def finished_run() -> tuple[str, str] | None:
            procs.check_alive()
            for (state,) in query(db, "SELECT state FROM task_instance WHERE dag_id = ? AND task_id = ?", DAG_ID, TASK):
                if state:
                    seen_states.add(state)
            rows = query(db, "SELECT run_id, state FROM dag_run WHERE dag_id = ?", DAG_ID)
            done = [(run_id, state) for run_id, state in rows if state in ("success", "failed")]
            return done[0] if done else None

        try:
            run_id, state = wait_for("the scheduled run to finish", finished_run, timeout=200)
        except AssertionError as err:
            raise AssertionError(
                f"{err}\n--- scheduler ---\n{procs.tail('scheduler')}\n--- triggerer ---\n{procs.tail('triggerer')}"
            ) from None
        tasks = dict(
            query(db, "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", DAG_ID, run_id)
        )
        assert state == "success", f"{tasks}\n{procs.tail('scheduler')}\n{procs.tail('triggerer')}"
        assert tasks == {"build_requests": "success", "run_batch": "success", "join_results": "success"}, tasks
        assert "deferred" in seen_states, seen_states

        [batch] = emu.batches()  # one batch: the deferral and resumption did not create another
        assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 30
        [folder] = (staging / "batch_pipeline").iterdir()
        assert (folder / "output.jsonl").read_bytes() == emu.content(batch["output_file_id"])
        assert emu.content(batch["input_file_id"]) == (folder / "requests.jsonl").read_bytes()
        [(joined,)] = query(
            db,
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = 'return_value'",
            DAG_ID,
            run_id,
            "join_results",
        )
        report = json.loads(joined) if isinstance(joined, str) else json.loads(bytes(joined))
        assert report["joined"] == report["succeeded"] == 30 and report["batch_id"] == batch["id"]
    finally:
        procs.stop()
    for name, proc in procs.started:
        assert proc.poll() is not None, f"airflow {name} is still running"
