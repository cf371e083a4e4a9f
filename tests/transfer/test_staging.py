"""The example DAGs' staging: local temp dir only where every task runs on one machine (issue 16)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.transfer import staging as _staging


@pytest.fixture(autouse=True)
def no_staging_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_FILES_STAGING", raising=False)


def _executor(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", value)


def test_configured_staging_wins_under_any_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    _executor(monkeypatch, "CeleryExecutor")
    monkeypatch.setenv("OPENAI_FILES_STAGING", "memory://bucket/openai")
    # universal-pathlib < 0.3 (Airflow 3.1's pin) renders it "memory:///bucket/...": the same location.
    assert str(_staging.staging_root({})).replace(":///", "://") == "memory://bucket/openai"


@pytest.mark.parametrize(
    "executor", ["LocalExecutor", "SequentialExecutor", "airflow.executors.local_executor.LocalExecutor"]
)
def test_local_temp_dir_on_one_machine(monkeypatch: pytest.MonkeyPatch, executor: str) -> None:
    _executor(monkeypatch, executor)
    root = _staging.staging_root({})
    assert root.protocol in ("file", "local", "") and root.path.endswith("openai_files_staging")


@pytest.mark.parametrize(
    "executor",
    [
        "CeleryExecutor",
        "KubernetesExecutor",
        "LocalExecutor,CeleryExecutor",
        "airflow.providers.celery.executors.celery_executor.CeleryExecutor",
    ],
)
def test_refused_where_tasks_can_land_on_other_machines(monkeypatch: pytest.MonkeyPatch, executor: str) -> None:
    _executor(monkeypatch, executor)
    with pytest.raises(AirflowFailException, match=r"OPENAI_FILES_STAGING.*shared storage"):
        _staging.staging_root({})


def test_dag_test_runs_every_task_here(monkeypatch: pytest.MonkeyPatch) -> None:
    _executor(monkeypatch, "CeleryExecutor")
    context: dict[str, Any] = {"dag_run": SimpleNamespace(triggering_user_name="dag_test")}
    assert _staging.staging_root(context).path.endswith("openai_files_staging")
