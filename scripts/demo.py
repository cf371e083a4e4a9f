"""``make demo``: run the example pipelines end to end against the local emulator.

Starts the emulator on a free loopback port, prepares a throw-away AIRFLOW_HOME on SQLite, runs
``airflow dags test <dag> <yesterday>`` for each example pipeline (the fine-tune pipeline, then the
batch pipeline), prints what happened (task states, tries, file ids, bytes, batch counts, the
fine-tuned model and its final metrics), stops the emulator and exits 0 only if every task of every
run succeeded. Nothing outside a temporary directory is touched; no request leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: The example pipelines the demo runs, in order.
DAG_IDS = ("openai_fine_tune_data_pipeline", "openai_batch_pipeline", "openai_vector_store_sync")
sys.path.insert(0, str(REPO))

# Run inside a separate interpreter with the demo's Airflow environment: reads the finished run back.
_REPORT = """
import json, sys
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

dag_id = sys.argv[1]
with create_session() as session:
    run = session.query(DagRun).filter_by(dag_id=dag_id).order_by(DagRun.id.desc()).first()
    report = {"run_id": None, "state": None, "tasks": [], "xcom": {}}
    if run is not None:
        report.update(run_id=run.run_id, state=str(run.state))
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run.run_id)
        report["tasks"] = [
            {"task_id": ti.task_id, "state": str(ti.state), "try_number": ti.try_number,
             "start": ti.start_date.isoformat() if ti.start_date else None,
             "end": ti.end_date.isoformat() if ti.end_date else None}
            for ti in sorted(tis, key=lambda ti: (ti.start_date is None, ti.start_date))
        ]
        for row in session.query(XComModel).filter_by(dag_id=dag_id, run_id=run.run_id, key="return_value"):
            report["xcom"][row.task_id] = row.value
print("REPORT " + json.dumps(report, default=str))
"""


def airflow_command() -> list[str]:
    candidate = Path(sys.executable).with_name("airflow")
    return [str(candidate)] if candidate.exists() else [sys.executable, "-m", "airflow"]


def demo_env(home: Path, connection: str, staging: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags_examples"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW_CONN_OPENAI_FILES_DEFAULT=connection,
        OPENAI_FILES_STAGING=f"file://{staging}",
    )
    return env


def step(
    what: str, command: list[str], env: dict[str, str], log: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    print(f"  {what} ...", end="", flush=True)
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}\n(exit {done.returncode})\n\n")
    print(f" {'done' if done.returncode == 0 else f'exit {done.returncode}'} ({time.monotonic() - started:.1f}s)")
    return done


def decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _full(value: Any) -> str:
    """A value in full (never cut: a path or an id is useless with its end missing)."""
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


def _metrics(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{key}={item}" for key, item in value.items())
    return _full(value)


#: Keys of the tasks' return values worth a line in the summary, in this order.
HIGHLIGHTS = (
    ("id", "file"),
    ("filename", "name"),
    ("bytes", "bytes"),
    ("purpose", "purpose"),
    ("status", "status"),
    ("sha256", "sha256"),
    ("lines", "lines"),
    ("batch_id", "batch"),
    ("request_counts", "requests"),
    ("job_id", "fine-tuning job"),
    ("fine_tuned_model", "fine-tuned model"),
    ("trained_tokens", "trained tokens"),
    ("metrics", "final metrics"),
    ("joined", "joined"),
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("deleted", "deleted"),
    ("vector_store_id", "vector store"),
    ("added", "added"),
    ("replaced", "replaced"),
    ("removed", "removed"),
    ("unchanged", "unchanged"),
    ("usage_bytes", "usage bytes"),
    ("best_hit", "best search hit"),
    ("score", "score"),
)
#: Paths in return values: (key, what lands there, the file id key of what landed).
LANDINGS = (
    ("output_path", "output", "output_file_id"),
    ("error_path", "errors", "error_file_id"),
    ("results_path", "results", "result_files"),
)


def landing_lines(group: dict[str, Any]) -> list[str]:
    """
    What happened to each path in a task's return value, in full.

    A task that lands results (its value names a batch or a job) says where each file landed, with its
    size, or that there was none (no error file when every request was answered); any other task's paths
    are where it plans results to land, and say so. A path is "landed" only if the file is there.
    """
    lands = "batch_id" in group or "job_id" in group
    lines = []
    for key, what, file_key in LANDINGS:
        if key not in group:
            continue
        path = group[key]
        if not lands:
            if path not in (None, ""):
                lines.append(f"{what} destination {path}")
        elif path in (None, ""):
            file_id = group.get(file_key)
            file_id = ", ".join(file_id) if isinstance(file_id, list) else file_id
            lines.append(f"no {what} file" if not file_id else f"{what} file {file_id} left on the service")
        else:
            for one in path if isinstance(path, list) else [path]:
                if Path(one).is_file():
                    lines.append(f"{what} landed at {one} ({Path(one).stat().st_size} bytes)")
                else:
                    lines.append(f"{what} expected at {one}, but no file is there")
    return lines


def print_summary(dag_id: str, report: dict[str, Any], output: str, logical: date) -> bool:
    tasks = report["tasks"]
    xcom = {task: decode(value) for task, value in report["xcom"].items()}
    print()
    print(f"DAG run {report['run_id']} ({dag_id}, logical date {logical}): {report['state']}")
    print()
    print(f"  {'task':<28} {'state':<10} {'try':>3} {'seconds':>8}")
    for ti in tasks:
        took = seconds_between(ti["start"], ti["end"])
        print(f"  {ti['task_id']:<28} {ti['state']:<10} {ti['try_number']:>3} {'' if took is None else f'{took:8.1f}'}")
    if "Pausing task as DEFERRED" in output or "running trigger in line" in output:
        print("\n  (deferrable tasks waited in the trigger, then resumed)")
    print()
    for ti in tasks:
        value = xcom.get(ti["task_id"])
        if isinstance(value, dict):
            # One level of nesting (an audit record per uploaded file) is shown as its own group.
            # (A dict already shown on a line of its own, such as request_counts, is not shown twice.)
            shown_keys = {key for key, _ in HIGHLIGHTS}
            groups = [(ti["task_id"], value)] + [
                (f"{ti['task_id']}.{name}", inner)
                for name, inner in value.items()
                if isinstance(inner, dict) and name not in shown_keys
            ]
            for title, group in groups:
                shown = [
                    f"{label} {_metrics(group[key]) if key == 'metrics' else _full(group[key])}"
                    for key, label in HIGHLIGHTS
                    if group.get(key) not in (None, "")
                ] + landing_lines(group)
                if shown:
                    print(f"  {title}:")
                    for item in shown:
                        print(f"      {item}")
        elif isinstance(value, list):
            print(f"  {ti['task_id']}: {len(value)} item(s)" + (f" {_full(value)}" if value else ""))
        elif value not in (None, ""):
            print(f"  {ti['task_id']}: {_full(value)}")
    return report["state"] == "success" and bool(tasks) and all(ti["state"] == "success" for ti in tasks)


def print_store(emulator: Any) -> None:
    files = emulator.files()
    print()
    print(f"  the emulator now stores {len(files)} file(s):")
    for item in files:
        print(
            f"    {item['id']}  {item['filename']}  {item['bytes']} bytes  purpose {item['purpose']}  "
            f"status {item['status']}"
        )
    for what, items in (("batch", emulator.batches()), ("fine-tuning job", emulator.fine_tuning_jobs())):
        for item in items:
            extra = item.get("request_counts") or item.get("fine_tuned_model") or ""
            print(f"    {what} {item['id']}  status {item['status']}  {_full(extra)}")
    for store in emulator.vector_stores():
        counts = store["file_counts"]
        print(
            f"    vector store {store['id']} ({store['name']})  status {store['status']}  {counts['total']} files"
            f" ({counts['completed']} completed, {counts['failed']} failed)  {store['usage_bytes']} bytes used"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", help="logical date (YYYY-MM-DD); default: yesterday (UTC)")
    parser.add_argument("--processing-delay", type=float, default=2.0, help="seconds before a file is processed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    logical = date.fromisoformat(args.date) if args.date else datetime.now(timezone.utc).date() - timedelta(days=1)

    from airflow_openai_files.emulator import EmulatorProcess

    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="openai-files-demo-"))
    home, staging, log = workdir / "airflow_home", workdir / "staging", workdir / "demo.log"
    home.mkdir()
    staging.mkdir()
    ok = False
    print(f"OpenAI Files provider demo (work directory {workdir})")
    # A few seconds per batch and job, on the emulator's clock, so the deferrable tasks visibly wait.
    emulator = EmulatorProcess(
        data_dir=workdir / "emulator",
        processing_delay=args.processing_delay,
        batch_in_progress_seconds=3.0,
        fine_tuning_train_seconds=3.0,
    )
    try:
        emulator.start()
        print(
            f"  emulator listening on {emulator.base_url} "
            f"(pid {emulator.pid}, processing delay {args.processing_delay:g}s)"
        )
        env = demo_env(home, emulator.airflow_connection(), staging)
        airflow = airflow_command()
        if step("airflow db migrate", [*airflow, "db", "migrate"], env, log, 300).returncode != 0:
            print(f"airflow db migrate failed; see {log}")
            return 1
        results = []
        for dag_id in DAG_IDS:
            run = step(
                f"airflow dags test {dag_id} {logical}", [*airflow, "dags", "test", dag_id, str(logical)], env, log, 900
            )
            done = step(f"reading the {dag_id} run back", [sys.executable, "-c", _REPORT, dag_id], env, log, 120)
            line = next((row for row in done.stdout.splitlines() if row.startswith("REPORT ")), None)
            if line is None:
                print(f"could not read the {dag_id} run back; see {log}")
                return 1
            report = json.loads(line[len("REPORT ") :])
            results.append(print_summary(dag_id, report, run.stdout + run.stderr, logical) and run.returncode == 0)
        print_store(emulator)
        ok = all(results)
    finally:
        emulator.stop()
        elapsed = time.monotonic() - began
        if ok:
            print(f"\nEvery task succeeded ({elapsed:.1f}s). Emulator stopped.")
            if args.keep:
                print(f"Kept the work directory {workdir} (landed files, logs, the emulator's data).")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
                print(f"Removed the work directory {workdir}; run with --keep to look at the landed files.")
        else:
            print(f"\nThe demo FAILED after {elapsed:.1f}s. Logs: {log}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
