"""The pytest fixtures shipped through the ``pytest11`` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import requests

from airflow_openai_files.emulator import Emulator


def test_connection_fixture_points_at_the_emulator(openai_files_connection: Emulator) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"])
    assert conn == {
        "conn_type": "openai_files",
        "host": openai_files_connection.base_url,
        "password": openai_files_connection.api_key,
    }
    answer = requests.get(f"{conn['host']}/files", headers={"Authorization": f"Bearer {conn['password']}"})
    assert answer.json()["data"] == []


def test_emulator_fixture_is_isolated_per_test(openai_files_emulator: Emulator) -> None:
    assert openai_files_emulator.files() == [] and openai_files_emulator.request_log() == []
    assert openai_files_emulator.base_url.startswith("http://127.0.0.1:")


def test_importing_the_plugin_is_cheap() -> None:
    code = (
        "import sys, airflow_openai_files.emulator.pytest_plugin, airflow_openai_files.emulator;"
        "assert not {'fastapi', 'uvicorn', 'starlette', 'airflow'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
