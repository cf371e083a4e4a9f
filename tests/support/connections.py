"""Airflow connections for the tests, defined through ``AIRFLOW_CONN_*`` environment variables."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from airflow_openai_files.limits import CONN_TYPE, DEFAULT_CONN_ID


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = DEFAULT_CONN_ID, **fields: Any) -> None:
    """Define a connection through its environment variable (JSON form keeps types; ``extra`` as a dict)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": CONN_TYPE, **fields}))


def free_port() -> int:
    """A loopback port nobody listens on (connection refused) that a server can bind later."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
