"""The package registers itself as an Airflow provider with a declarative ``openai_files`` connection form."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from airflow_openai_files import __version__
from airflow_openai_files.provider_info import get_provider_info


def test_entry_point_points_at_provider_info() -> None:
    eps = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_openai_files")]
    assert len(eps) == 1 and eps[0].load() is get_provider_info


def test_provider_info_declares_everything() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-openai-files"
    assert info["versions"] == [__version__]
    modules = {
        key: [m for group in info[key] for m in group["python-modules"]]
        for key in ("hooks", "operators", "sensors", "triggers")
    }
    assert modules == {
        "hooks": ["airflow_openai_files.hooks"],
        "operators": ["airflow_openai_files.operators"],
        "sensors": ["airflow_openai_files.sensors"],
        "triggers": ["airflow_openai_files.triggers"],
    }
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == "openai_files" and conn["hook-name"] == "OpenAI Files"
    behaviour = conn["ui-field-behaviour"]
    assert sorted(behaviour["hidden-fields"]) == ["login", "port", "schema"]
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API Key"}
    assert behaviour["placeholders"]["host"] == "https://api.openai.com/v1"
    assert {"organization", "project", "timeout", "max_retries"} <= set(conn["conn-fields"])


def test_providers_manager_knows_the_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    hook = manager.hooks["openai_files"]
    assert hook is not None and hook.hook_class_name == "airflow_openai_files.hooks.OpenAIFilesHook"
    assert hook.connection_id_attribute_name == "openai_conn_id"
    assert manager.field_behaviours["openai_files"]["relabeling"]["password"] == "API Key"
    widgets = manager.connection_form_widgets
    assert {"extra__openai_files__organization", "extra__openai_files__max_retries"} <= set(widgets)


def test_airflow_providers_list_shows_the_package(tmp_path: Path) -> None:
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    airflow = Path(sys.executable).with_name("airflow")
    out = subprocess.run([str(airflow), "providers", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "airflow-provider-openai-files" in out.stdout
