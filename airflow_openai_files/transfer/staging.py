"""
Where pipelines stage the files one task writes and another uploads: :func:`staging_root`.

Used by the example DAGs (``from airflow_openai_files.transfer.staging import staging_root``), and meant
for yours: it lives in the package, not beside the DAG files, so a DAG file that uses it works wherever it
is placed (Airflow puts only the DAGs folder itself on ``sys.path``, not its subfolders).

A file one task writes and another uploads must be on storage both machines see. The local temp dir
is only such storage when every task runs on this machine: the Local, Sequential or Debug executor,
or ``dag.test()`` / ``airflow dags test``. Under any other executor (Celery, Kubernetes, Edge ...) the
tasks of one run land on different machines; a local default would make runs pass or fail by the luck
of scheduling, so :func:`staging_root` refuses there and says what to set instead:
``OPENAI_FILES_STAGING``, any ObjectStoragePath URL (``s3://aws_default@bucket/openai``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_openai_files._compat import AirflowFailException, conf

STAGING_ENV = "OPENAI_FILES_STAGING"
#: Executors that run every task of a run on the machine of the scheduler.
SINGLE_MACHINE_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor", "DebugExecutor"})


def _executor_names() -> list[str]:
    """Class names of the configured executors (``[core] executor`` may list several, with aliases)."""
    configured = conf.get("core", "executor", fallback="") or ""
    names = []
    for entry in configured.split(","):
        entry = entry.strip()
        if entry:
            names.append(entry.split(":")[-1].rsplit(".", 1)[-1])
    return names


def _dag_test(context: Mapping[str, Any] | None) -> bool:
    """A run started by ``dag.test()`` or ``airflow dags test``: its tasks run in this one process."""
    dag_run = (context or {}).get("dag_run")
    return getattr(dag_run, "triggering_user_name", None) == "dag_test"


def single_machine(context: Mapping[str, Any] | None = None) -> bool:
    """Whether every task of this run runs on this machine (so the local temp dir is shared storage)."""
    if _dag_test(context):
        return True
    names = _executor_names()
    return bool(names) and all(name in SINGLE_MACHINE_EXECUTORS for name in names)


def staging_root(context: Mapping[str, Any] | None = None) -> ObjectStoragePath:
    """
    ``$OPENAI_FILES_STAGING`` (any ObjectStoragePath URL, e.g. ``s3://aws_default@bucket/openai``), or the
    local temp dir when every task runs on this machine; otherwise a failure that is not retried.

    Call it inside a task (``context`` defaults to the running task's): the first task of a run then
    refuses before anything is written or uploaded.
    """
    configured = os.environ.get(STAGING_ENV)
    if configured:
        return ObjectStoragePath(configured)
    if context is None:
        try:
            from airflow.sdk import get_current_context

            context = get_current_context()
        except Exception:  # not in a task: decide by the executor alone
            context = None
    if single_machine(context):
        return ObjectStoragePath(f"file://{Path(tempfile.gettempdir()) / 'openai_files_staging'}")
    executors = ", ".join(_executor_names()) or "unknown"
    raise AirflowFailException(
        f"{STAGING_ENV} is not set, and the executor ({executors}) may run this run's tasks on different "
        f"machines, which do not share a local temp dir. Set {STAGING_ENV} to shared storage that every "
        f"worker can read and write, e.g. {STAGING_ENV}=s3://aws_default@my-bucket/openai"
    )
