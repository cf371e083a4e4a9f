"""One migrated Airflow metadata database per test process, copied for each test that needs one.

``airflow db migrate`` takes seconds (tens under load); copying the SQLite file it leaves takes
milliseconds. Each copy is a database of its own (its own ``AIRFLOW_HOME`` under the test's temporary
directory), so tests cannot see each other's runs, connections or XComs, and each pytest-xdist worker
makes its own template in its own temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DB_FILE = "airflow.db"


def airflow_env(home: Path) -> dict[str, str]:
    """The environment of an Airflow process on the metadata database under ``home`` (no other AIRFLOW_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags_examples"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/{DB_FILE}",
        PYTHONPATH=str(REPO),
    )
    return env


def airflow_command() -> str:
    return str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template: a freshly migrated metadata database (never used by a test directly)."""
    home = tmp_path_factory.mktemp("airflow-db-template")
    subprocess.run(
        [airflow_command(), "db", "migrate"], env=airflow_env(home), check=True, capture_output=True, timeout=300
    )
    return home / DB_FILE


def new_airflow_home(template: Path, home: Path) -> Path:
    """``home`` with a copy of the migrated database ``template``, ready for :func:`airflow_env`."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / DB_FILE)
    return home


@pytest.fixture
def airflow_home(migrated_airflow_db: Path, tmp_path: Path) -> Path:
    """An ``AIRFLOW_HOME`` of the test's own with a migrated metadata database (see :func:`airflow_env`)."""
    return new_airflow_home(migrated_airflow_db, tmp_path / "airflow_home")
