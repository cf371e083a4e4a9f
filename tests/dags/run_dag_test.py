"""Run one example DAG with ``dag.test()`` in a throw-away Airflow home and print a JSON report.

Used by ``tests/dags`` in a subprocess, so that the metadata database (``dag.test()`` needs one)
never touches the test process's own Airflow configuration::

    python tests/dags/run_dag_test.py DAG_FILE DAG_VARIABLE LOGICAL_DATE

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


def main(dag_file: str, variable: str, logical_date: str) -> int:
    sys.path.insert(0, str(Path(dag_file).resolve().parent))  # as Airflow does for its DAG folder
    spec = importlib.util.spec_from_file_location("example_dag_under_test", dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, variable)
    when = datetime.fromisoformat(logical_date).replace(tzinfo=timezone.utc)
    dag_run = dag.test(logical_date=when)

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    report: dict[str, Any] = {"state": str(dag_run.state), "run_id": dag_run.run_id, "tasks": {}, "xcom": {}}
    with create_session() as session:
        for ti in session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id):
            report["tasks"][ti.task_id] = str(ti.state)
        for row in session.query(XComModel).filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id, key="return_value"):
            report["xcom"][row.task_id] = row.value
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
