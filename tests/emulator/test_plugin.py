"""The pytest fixtures shipped through the ``pytest11`` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
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


def test_each_test_gets_an_emptied_emulator_with_its_marker_settings(pytester: pytest.Pytester) -> None:
    """In a session of its own: what one test leaves (files, faults, a moved clock) the next does not
    see; the marker's settings give another emulator; a stopped emulator is replaced."""
    pytester.makepyfile(
        """
        import io, time
        import pytest
        import requests

        SEEN = {}

        def put(emu):
            answer = requests.post(
                f"{emu.base_url}/files",
                headers={"Authorization": f"Bearer {emu.api_key}"},
                files={"file": ("a.txt", io.BytesIO(b"x"))},
                data={"purpose": "user_data"},
            )
            assert answer.status_code == 200, answer.text
            return answer.json()

        def test_leaves_things_behind(openai_files_emulator):
            put(openai_files_emulator)
            openai_files_emulator.add_fault(method="GET", path="/v1/files", status=500, times=5)
            openai_files_emulator.advance_clock(86400 * 30)
            SEEN["port"] = openai_files_emulator.port

        def test_sees_none_of_it(openai_files_emulator):
            assert openai_files_emulator.port == SEEN["port"]  # the same server, emptied
            assert openai_files_emulator.files() == [] and openai_files_emulator.pending_faults() == []
            assert openai_files_emulator.request_log() == []
            assert abs(openai_files_emulator.now() - time.time()) < 5

        @pytest.mark.openai_files_emulator(processing_delay=3600, api_key="sk-marked")
        def test_marker_settings(openai_files_emulator):
            assert openai_files_emulator.port != SEEN["port"] and openai_files_emulator.api_key == "sk-marked"
            assert put(openai_files_emulator)["status"] == "uploaded"  # processing takes an hour
            openai_files_emulator.stop()

        @pytest.mark.openai_files_emulator(processing_delay=3600, api_key="sk-marked")
        def test_a_stopped_emulator_is_replaced(openai_files_emulator):
            assert openai_files_emulator.files() == [] and put(openai_files_emulator)["status"] == "uploaded"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4)
