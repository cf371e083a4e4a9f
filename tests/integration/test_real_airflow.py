"""The fine-tune DAG under real Airflow processes: api-server, scheduler, triggerer, LocalExecutor, SQLite.

The scheduler creates the ``@daily`` run itself (the DAG is unpaused at creation); the fine-tuning task
defers and a real triggerer, importing ``OpenAIFineTuningJobTrigger`` from the installed package, resumes
it; the Asset event it publishes makes the scheduler run the evaluation DAG.
Everything listens on 127.0.0.1 and every process started here is stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.services import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "openai_fine_tune_data_pipeline"
SENSOR = "fine_tune"  # the deferrable task
EVALUATION_DAG_ID = "openai_fine_tuned_model_evaluation"
T = TypeVar("T")

pytestmark = [
    pytest.mark.openai_files_emulator(processing_delay=3.0),
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(300),
]


class Processes:
    """Airflow processes started by this test, each in its own session so its children stop with it."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), *args],
            env=self.env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.started.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                raise AssertionError(f"airflow {name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, size: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_bytes()[-size:].decode(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM each process by pid (the triggerer may take ~12 s), then SIGKILL what is left of its group."""
        for _, proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in self.started:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # leftover workers of this process's own session


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or a writer holds the lock
        return []
    finally:
        conn.close()


def test_fine_tune_dag_under_scheduler_and_triggerer(tmp_path: Path, openai_files_emulator: Any) -> None:
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
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags_examples"),
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
        AIRFLOW_CONN_OPENAI_FILES_DEFAULT=json.dumps(
            {
                "conn_type": "openai_files",
                "host": openai_files_emulator.base_url,
                "password": openai_files_emulator.api_key,
            }
        ),
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
            for (state,) in query(
                db, "SELECT state FROM task_instance WHERE dag_id = ? AND task_id = ?", DAG_ID, SENSOR
            ):
                if state:
                    seen_states.add(state)
            rows = query(db, "SELECT run_id, state FROM dag_run WHERE dag_id = ?", DAG_ID)
            done = [(run_id, state) for run_id, state in rows if state in ("success", "failed")]
            return done[0] if done else None

        try:
            run_id, state = wait_for("the scheduled run to finish", finished_run, timeout=180)
        except AssertionError as err:
            raise AssertionError(
                f"{err}\n--- scheduler ---\n{procs.tail('scheduler')}\n--- triggerer ---\n{procs.tail('triggerer')}"
            ) from None
        tasks = dict(
            query(db, "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", DAG_ID, run_id)
        )
        assert state == "success", f"{tasks}\n{procs.tail('scheduler')}"
        assert set(tasks.values()) == {"success"} and len(tasks) == 8, tasks
        assert "deferred" in seen_states, seen_states

        # The task's own log shows the deferral, and the summary of the job's step metrics logged by the triggerer
        # (each step's event is at debug; at info a summary at most once a minute and the last step at the end).
        # (the triggerer writes its part next to the worker's: ``attempt=1.log.trigger.<id>.log``)
        task_logs = sorted((home / "logs").glob(f"dag_id={DAG_ID}/run_id=*/task_id={SENSOR}/attempt=1.log*"))
        text = "".join(path.read_text(errors="replace") for path in task_logs)
        assert "Pausing task as DEFERRED" in text or "deferred" in text.lower(), text[-3000:]
        assert re.search(r"step \d+/\d+: training loss \d", text), (
            [p.name for p in task_logs],
            procs.tail("triggerer"),
        )
        assert "Fine-tuned model ft:" in text, text[-3000:]

        (job,) = openai_files_emulator.fine_tuning_jobs()
        assert job["status"] == "succeeded"
        files = {f["id"]: f for f in openai_files_emulator.files()}
        training = files[job["training_file"]]
        assert training["filename"].startswith("support_conversations_")
        built = staging / "fine_tune" / training["filename"]
        assert openai_files_emulator.content(training["id"]) == built.read_bytes()
        (results_file,) = job["result_files"]
        landed = list((staging / "fine_tune" / "results").glob("*.csv"))
        assert [path.read_bytes() for path in landed] == [openai_files_emulator.content(results_file)]

        # The Asset event started the evaluation DAG, which saw the model name.
        def evaluated() -> str | None:
            procs.check_alive()
            rows = query(db, "SELECT state FROM dag_run WHERE dag_id = ?", EVALUATION_DAG_ID)
            return next((row[0] for row in rows if row[0] in ("success", "failed")), None)

        assert wait_for("the evaluation DAG run", evaluated, timeout=90) == "success"
        eval_logs = list((home / "logs").glob(f"dag_id={EVALUATION_DAG_ID}/run_id=*/task_id=gate_on_metrics/*.log"))
        assert job["fine_tuned_model"] in "".join(p.read_text(errors="replace") for p in eval_logs)
    finally:
        procs.stop()
    for name, proc in procs.started:
        assert proc.poll() is not None, f"airflow {name} is still running"
