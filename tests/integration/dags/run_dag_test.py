"""Run one example DAG with ``dag.test()`` in a throw-away Airflow home and print a JSON report.

Used by ``tests/integration/dags`` in a subprocess, so that the metadata database (``dag.test()`` needs one)
never touches the test process's own Airflow configuration::

    python tests/integration/dags/run_dag_test.py DAG_FILE DAG_VARIABLE LOGICAL_DATE

The environment must already carry ``AIRFLOW_HOME`` (migrated), ``AIRFLOW__CORE__DAGS_FOLDER`` and
the ``AIRFLOW_CONN_OPENAI_FILES_DEFAULT`` connection. The last line printed is the report.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def asset_events(session: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """The Asset events the run emitted: the asset's URI and the event's extra."""
    from airflow.models.asset import AssetEvent, AssetModel

    rows = (
        session.query(AssetEvent, AssetModel.uri)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .filter(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
    )
    return [{"uri": uri, "extra": event.extra, "task_id": event.source_task_id} for event, uri in rows]


def task_logs(dag_id: str, run_id: str) -> str:
    """The run's task log files: Airflow 3.1's dag.test() does not echo task logs to stdout."""
    import os
    from pathlib import Path

    base = Path(os.environ.get("AIRFLOW_HOME", ".")) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    if not base.is_dir():
        return ""
    return "\n".join(p.read_text(errors="replace") for p in sorted(base.rglob("*.log")))


def main(dag_file: str, variable: str, logical_date: str) -> int:
    sys.path.insert(0, str(Path(dag_file).resolve().parent))  # as Airflow does for its DAG folder
    spec = importlib.util.spec_from_file_location("example_dag_under_test", dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, variable)
    when = datetime.fromisoformat(logical_date).replace(tzinfo=timezone.utc)
    from airflow_openai_files._compat import AIRFLOW_V_3_2_PLUS

    if not AIRFLOW_V_3_2_PLUS:  # 3.1's dag.test() needs the DAG serialized first, as `airflow dags test` does
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.models.dagbag import DagBag, sync_bag_to_db

        DagBundlesManager().sync_bundles_to_db()
        sync_bag_to_db(DagBag(dag_folder=dag_file, include_examples=False), "dags-folder", None)
    dag_run = dag.test(logical_date=when)

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    report: dict[str, Any] = {
        "state": str(dag_run.state),
        "run_id": dag_run.run_id,
        "tasks": {},
        "xcom": {},
        "mapped": {},  # task id -> {map index: {"state", "try_number", "xcom"}} for mapped tasks
    }
    with create_session() as session:
        for ti in session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id):
            if ti.map_index >= 0:
                entry = {"state": str(ti.state), "try_number": ti.try_number}
                report["mapped"].setdefault(ti.task_id, {})[str(ti.map_index)] = entry
            else:
                report["tasks"][ti.task_id] = str(ti.state)
                report.setdefault("tries", {})[ti.task_id] = ti.try_number
        for row in session.query(XComModel).filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id, key="return_value"):
            if row.map_index >= 0:
                report["mapped"].setdefault(row.task_id, {}).setdefault(str(row.map_index), {})["xcom"] = row.value
            else:
                report["xcom"][row.task_id] = row.value
        report["asset_events"] = asset_events(session, dag.dag_id, dag_run.run_id)
    report["task_logs"] = task_logs(dag.dag_id, dag_run.run_id)
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
