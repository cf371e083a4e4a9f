"""Airflow connections for the tests, defined through ``AIRFLOW_CONN_*`` environment variables."""

from __future__ import annotations

import json
import os
import socket
from typing import TYPE_CHECKING, Any

from airflow_openai_files.limits import CONN_TYPE, DEFAULT_CONN_ID

if TYPE_CHECKING:  # the probes import this module in fresh processes: keep it light
    import pytest


def conn_env_var(conn_id: str = DEFAULT_CONN_ID) -> str:
    """The environment variable Airflow reads a connection from."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def connection_value(**fields: Any) -> str:
    """The JSON value of an ``AIRFLOW_CONN_*`` variable (JSON keeps types; ``extra`` as a dict or a string;
    ``conn_type`` is ``openai_files`` unless given).

    For a peer that is not an :class:`Emulator` (a sink, a subprocess's URL); for an emulator use
    ``Emulator.airflow_connection(**extra)``.
    """
    return json.dumps({"conn_type": CONN_TYPE, **fields})


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = DEFAULT_CONN_ID, **fields: Any) -> None:
    """Define a connection through its environment variable for the test's duration."""
    monkeypatch.setenv(conn_env_var(conn_id), connection_value(**fields))


def export_connection(conn_id: str = DEFAULT_CONN_ID, **fields: Any) -> None:
    """Define a connection for the rest of this process (probes and benchmarks run in their own)."""
    os.environ[conn_env_var(conn_id)] = connection_value(**fields)


def use_emulator(monkeypatch: pytest.MonkeyPatch, emulator: Any, conn_id: str = DEFAULT_CONN_ID, **extra: Any) -> None:
    """Point ``conn_id`` at a running emulator (``Emulator.airflow_connection``) for the test's duration."""
    monkeypatch.setenv(conn_env_var(conn_id), emulator.airflow_connection(**extra))


def free_port() -> int:
    """A loopback port nobody listens on (connection refused) that a server can bind later."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
