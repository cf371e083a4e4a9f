"""A connection stored in the metadata database works from a plain script (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.airflow_db import airflow_command, airflow_env, new_airflow_home

# Airflow's own processes: db migrate, connections add, and a script per test (make test-slow).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def db_home(migrated_airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated metadata database holding the connection ``from_db`` (and no env connection)."""
    env = airflow_env(new_airflow_home(migrated_airflow_db, tmp_path_factory.mktemp("airflow_home_conn")))
    airflow = airflow_command()
    subprocess.run(
        [airflow, "connections", "add", "from_db", "--conn-type", "openai_files", "--conn-host",
         "http://127.0.0.1:9/v1", "--conn-password", "sk-from-the-database-123"],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return env


def script(env: dict[str, str], code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_connection_from_the_metadata_database_works_in_a_script(db_home: dict[str, str]) -> None:
    code = (
        "from airflow_openai_files.hooks import OpenAIFilesHook;"
        "s = OpenAIFilesHook(openai_conn_id='from_db').settings;"
        "print(s.base_url, s.api_key == 'sk-from-the-database-123')"
    )
    assert script(db_home, code) == "http://127.0.0.1:9/v1 True"


def test_a_missing_connection_says_where_it_was_looked_for(db_home: dict[str, str]) -> None:
    code = (
        "from airflow_openai_files._compat import AirflowNotFoundException, get_connection\n"
        "try:\n    get_connection('nowhere')\nexcept AirflowNotFoundException as err:\n    print(err)"
    )
    out = script(db_home, code)
    assert "environment variables or secrets backends" in out and "nor in the metadata database" in out


def test_without_a_readable_database_the_message_says_why(db_home: dict[str, str], tmp_path: Path) -> None:
    env = {**db_home, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/empty.db"}
    code = (
        "from airflow_openai_files._compat import AirflowNotFoundException, get_connection\n"
        "try:\n    get_connection('from_db')\nexcept AirflowNotFoundException as err:\n    print(err)"
    )
    out = script(env, code)
    assert f"no metadata database at {tmp_path}/empty.db" in out
    assert not (tmp_path / "empty.db").exists()  # looking did not create one
    (tmp_path / "empty.db").write_bytes(b"not a database")
    out = script(env, code)
    assert "outside a running task Airflow 3 does not read the metadata database" in out
