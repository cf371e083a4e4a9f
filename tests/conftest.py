from __future__ import annotations

import json
import os

import pytest

# Hook and operator tests need no metadata database; keep Airflow quiet and offline.
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

API_KEY = "sk-test-0123456789abcdefSECRET"
BASE_URL = "http://127.0.0.1:9/v1"


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = "openai_files_default", **fields: object) -> None:
    """Define an Airflow connection through its environment variable (JSON form keeps types)."""
    body = {"conn_type": "openai_files", "host": BASE_URL, "password": API_KEY}
    body.update(fields)  # type: ignore[arg-type]
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))


@pytest.fixture
def mock_connection(monkeypatch: pytest.MonkeyPatch) -> str:
    """A connection pointing at an unroutable loopback port: for tests with a mocked transport."""
    set_connection(monkeypatch)
    return BASE_URL
