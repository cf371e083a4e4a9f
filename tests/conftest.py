from __future__ import annotations

import os
from typing import Any

import pytest

from airflow_openai_files.limits import DEFAULT_CONN_ID
from tests.support.connections import set_connection as _set_connection

# Hook and operator tests need no metadata database; keep Airflow quiet and offline.
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

pytest_plugins = [
    "tests.support.s3",  # s3_server / s3: moto's S3 server on loopback
    "tests.support.airflow_db",  # migrated_airflow_db: one migrated metadata database to copy
    "pytester",  # runs a pytest session of its own (the emulator plugin's tests)
]

API_KEY = "sk-test-0123456789abcdefSECRET"
BASE_URL = "http://127.0.0.1:9/v1"


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = DEFAULT_CONN_ID, **fields: object) -> None:
    """A connection to ``BASE_URL`` with ``API_KEY`` unless ``fields`` say otherwise."""
    _set_connection(monkeypatch, conn_id, **{"host": BASE_URL, "password": API_KEY, **fields})


@pytest.fixture
def mock_connection(monkeypatch: pytest.MonkeyPatch) -> str:
    """A connection pointing at an unroutable loopback port: for tests with a mocked transport."""
    set_connection(monkeypatch)
    return BASE_URL


@pytest.fixture
def memory_fs() -> Any:
    """``memory://`` as an ObjectStoragePath scheme (registered explicitly), emptied after the test."""
    import fsspec
    from airflow.sdk.io.store import attach

    fs = fsspec.filesystem("memory")
    attach(protocol="memory", fs=fs)
    yield fs
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")
