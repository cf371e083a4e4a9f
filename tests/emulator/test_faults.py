"""Each kind of scripted fault, seen from a raw ``requests`` client and from the SDK."""

from __future__ import annotations

import http.client
import time

import openai
import pytest
import requests

from airflow_openai_files.emulator import Emulator
from tests.emulator.conftest import ValidatingSession, sdk_client


def test_status_fault_with_retry_headers_then_normal(openai_files_emulator: Emulator, http: ValidatingSession) -> None:
    openai_files_emulator.add_fault(
        method="POST",
        path="/v1/files",
        times=2,
        status=503,
        headers={"retry-after-ms": "10", "retry-after": "1", "x-should-retry": "true"},
        error={"message": "Slow down", "code": "slow_down"},
    )
    for _ in range(2):
        response = http.post("/files", files={"file": ("a.txt", b"x" * 100_000)}, data={"purpose": "user_data"})
        assert response.status_code == 503
        assert response.headers["retry-after-ms"] == "10" and response.headers["x-should-retry"] == "true"
        assert response.headers["x-request-id"].startswith("req_")
        assert response.json()["error"] == {
            "message": "Slow down",
            "type": "server_error",
            "param": None,
            "code": "slow_down",
        }
    assert http.post("/files", files={"file": ("a.txt", b"x")}, data={"purpose": "user_data"}).ok
    assert [s for _, _, s in openai_files_emulator.request_log()] == [503, 503, 200]
    assert len(openai_files_emulator.files()) == 1


def test_sdk_retries_status_faults(openai_files_emulator: Emulator) -> None:
    openai_files_emulator.add_fault(
        method="GET", path="/v1/files", times=2, status=429, headers={"retry-after-ms": "5"}
    )
    with sdk_client(openai_files_emulator, max_retries=2) as client:
        assert list(client.files.list()) == []
    openai_files_emulator.add_fault(method="*", path="/v1/files/*", status=500, headers={"x-should-retry": "false"})
    with sdk_client(openai_files_emulator, max_retries=2) as client, pytest.raises(openai.InternalServerError):
        client.files.retrieve("file-abc")
    assert [s for _, _, s in openai_files_emulator.request_log()] == [429, 429, 200, 500]


def test_fault_matching_by_method_and_glob(openai_files_emulator: Emulator, http: ValidatingSession) -> None:
    created = http.post("/files", files={"file": ("a.png", b"x")}, data={"purpose": "vision"}).json()
    openai_files_emulator.add_fault(method="GET", path="/v1/files/*/content", status=502)
    assert http.get(f"/files/{created['id']}").ok  # no match: not content
    assert http.delete(f"/files/{created['id']}/content").status_code == 404  # wrong method: route 404
    assert http.get(f"/files/{created['id']}/content").status_code == 502
    assert http.get(f"/files/{created['id']}/content").ok  # used up


def test_delay_then_normal_answer(openai_files_emulator: Emulator, http: ValidatingSession) -> None:
    openai_files_emulator.add_fault(method="GET", path="/v1/files", delay=0.3)
    began = time.monotonic()
    assert http.get("/files").ok
    assert time.monotonic() - began >= 0.3
    began = time.monotonic()
    assert http.get("/files").ok
    assert time.monotonic() - began < 0.3


def test_delay_causes_sdk_timeout(openai_files_emulator: Emulator) -> None:
    openai_files_emulator.add_fault(method="GET", path="/v1/files", delay=1.0)
    with sdk_client(openai_files_emulator, timeout=0.2) as client, pytest.raises(openai.APITimeoutError):
        client.files.list()


def test_close_after_body_still_creates_the_file(openai_files_emulator: Emulator, http: ValidatingSession) -> None:
    openai_files_emulator.add_fault(method="POST", path="/v1/files", action="close_after_body")
    payload = b"z" * 300_000
    with pytest.raises(requests.ConnectionError):
        http.post("/files", files={"file": ("a.txt", payload)}, data={"purpose": "user_data"})
    files = openai_files_emulator.files()
    assert len(files) == 1 and files[0]["bytes"] == len(payload)
    assert openai_files_emulator.content(files[0]["id"]) == payload
    assert openai_files_emulator.request_log() == [("POST", "/v1/files", 0)]
    # the server carries on normally
    assert http.get("/files").json()["data"] == files


def test_sdk_retry_after_close_creates_a_duplicate(openai_files_emulator: Emulator) -> None:
    """What the official SDK does (no idempotency key): the file lands twice."""
    openai_files_emulator.add_fault(method="POST", path="/v1/files", action="close_after_body")
    with sdk_client(openai_files_emulator, max_retries=1) as client:
        client.files.create(file=("a.txt", b"abc"), purpose="user_data")
    assert len(openai_files_emulator.files()) == 2


def test_truncated_download(openai_files_emulator: Emulator, http: ValidatingSession) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    created = http.post("/files", files={"file": ("a.png", payload)}, data={"purpose": "vision"}).json()
    openai_files_emulator.add_fault(method="GET", path="/v1/files/*/content", action="truncate_body")
    response = http.get(f"/files/{created['id']}/content", stream=True)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(payload))
    received = bytearray()
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        for chunk in response.iter_content(65536):
            received += chunk
    assert 0 < len(received) < len(payload)
    assert bytes(received) == payload[: len(received)]
    # and the next download is whole
    assert http.get(f"/files/{created['id']}/content").content == payload


def test_truncated_json_answer_raw(openai_files_emulator: Emulator) -> None:
    openai_files_emulator.add_fault(method="GET", path="/v1/files", action="truncate_body")
    host, port = openai_files_emulator.base_url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/v1/files", headers={"Authorization": "Bearer k"})
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()


def test_fault_over_admin_api(openai_files_emulator: Emulator) -> None:
    root = openai_files_emulator.base_url[: -len("/v1")]
    requests.post(f"{root}/_emulator/faults", json={"method": "GET", "path": "/v1/files", "status": 504})
    assert (
        requests.get(f"{openai_files_emulator.base_url}/files", headers={"Authorization": "Bearer k"}).status_code
        == 504
    )


def test_invalid_fault_definitions(openai_files_emulator: Emulator) -> None:
    with pytest.raises(ValueError):
        openai_files_emulator.add_fault(path="/v1/files")  # nothing to do
    with pytest.raises(ValueError):
        openai_files_emulator.add_fault(path="/v1/files", action="explode")
