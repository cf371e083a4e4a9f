"""A real S3-compatible server on loopback (moto in server mode) and an Airflow ``aws`` connection to it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.connections import free_port

S3_CONN_ID = "batch_s3"


def _moto_server() -> str | None:
    found = Path(sys.executable).with_name("moto_server")
    return str(found) if found.exists() else shutil.which("moto_server")


@contextmanager
def moto_s3(monkeypatch: Any, bucket: str = "results") -> Iterator[str]:
    """Start ``moto_server`` on a free loopback port, create ``bucket``, define the ``batch_s3`` connection.

    Yields the endpoint URL. The server is stopped (by its own pid) when the block exits.
    """
    import pytest

    binary = _moto_server()
    if binary is None:
        pytest.skip("moto[server] is not installed")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{S3_CONN_ID.upper()}",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                }
            ),
        )
        request = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
