"""OpenAIFilesAsyncHook as the triggerer uses it: one shared client per connection, TLS failures at once."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_openai_files.client.async_transport import shared_clients
from airflow_openai_files.hooks import OpenAIFilesAsyncHook, OpenAIFilesHook
from airflow_openai_files.triggers import OpenAIFileTrigger
from tests.conftest import set_connection
from tests.support.emulators import FILES_STAY_UPLOADED, PROCESSING_DELAY
from tests.support.tls import ScriptedServer, json_reply, self_signed_certificate, tls_server_context
from tests.support.triggers import collect, run_trigger


def count_clients(monkeypatch: pytest.MonkeyPatch) -> list[httpx.AsyncClient]:
    created: list[httpx.AsyncClient] = []
    original = httpx.AsyncClient.__init__

    def spy(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        created.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", spy)
    return created


def test_untrusted_certificate_fails_the_trigger_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = json_reply(b'{"id": "file-abc", "object": "file", "status": "processed"}')
    with ScriptedServer([good], tls=tls_server_context(self_signed_certificate(tmp_path))) as server:
        set_connection(monkeypatch, host=server.base_url, extra={"max_retries": 5})
        started = time.monotonic()
        events = run_trigger(OpenAIFileTrigger("file-abc", poll_interval=0.05, timeout=60))
        elapsed = time.monotonic() - started
        assert [e["status"] for e in events] == ["error"]
        assert "CERTIFICATE_VERIFY_FAILED" in events[0]["message"] and "not retried" in events[0]["message"]
        assert server.connections == 1, "a certificate failure is not retried"
        assert elapsed < 5


@FILES_STAY_UPLOADED
def test_200_triggers_share_one_client_closed_after_the_last(
    openai_files_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    created_file = OpenAIFilesHook().upload_file(io.BytesIO(b"shared"), "user_data", filename="shared.txt")
    clients = count_clients(monkeypatch)

    async def scenario() -> tuple[list[list[dict[str, Any]]], dict[Any, httpx.AsyncClient], dict[Any, Any]]:
        tasks = [
            asyncio.ensure_future(collect(OpenAIFileTrigger(created_file["id"], poll_interval=0.05, timeout=60)))
            for _ in range(200)
        ]
        deadline = time.monotonic() + 60
        # Their polls are answered together by the connection's shared poller, from pages of GET /files.
        while sum(1 for m, p, _ in openai_files_connection.request_log() if m == "GET" and p.endswith("/files")) < 2:
            assert time.monotonic() < deadline, "the triggers were not answered twice"
            await asyncio.sleep(0.02)
        during = shared_clients()
        openai_files_connection.advance_clock(PROCESSING_DELAY + 1)
        results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        return results, during, shared_clients()

    results, during, after = asyncio.run(scenario())
    assert [events[0]["status"] for events in results] == ["success"] * 200
    assert len(clients) == 1, f"{len(clients)} httpx.AsyncClient built for one connection"
    assert list(during.values()) == [clients[0]]
    assert after == {} and clients[0].is_closed


@FILES_STAY_UPLOADED
def test_cancelled_triggers_release_the_client(openai_files_connection: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    created_file = OpenAIFilesHook().upload_file(io.BytesIO(b"shared"), "user_data", filename="shared.txt")
    clients = count_clients(monkeypatch)

    async def scenario() -> dict[Any, Any]:
        tasks = [
            asyncio.ensure_future(collect(OpenAIFileTrigger(created_file["id"], poll_interval=5, timeout=60)))
            for _ in range(5)
        ]
        deadline = time.monotonic() + 10
        while not any(m == "GET" for m, _, _ in openai_files_connection.request_log()):  # one page answers all
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return shared_clients()

    assert asyncio.run(scenario()) == {}
    assert len(clients) == 1 and clients[0].is_closed


@FILES_STAY_UPLOADED
def test_a_call_outside_the_context_manager_borrows_and_returns(openai_files_connection: Any) -> None:
    created_file = OpenAIFilesHook().upload_file(io.BytesIO(b"one"), "user_data", filename="one.txt")

    async def scenario() -> tuple[dict[str, Any], dict[Any, Any]]:
        hook = OpenAIFilesAsyncHook()
        return await hook.get_file(created_file["id"]), shared_clients()

    file, left_open = asyncio.run(scenario())
    assert file["id"] == created_file["id"] and file["bytes"] == 3
    assert left_open == {}


def test_the_triggerer_does_not_import_the_sync_stack() -> None:
    # Only what our modules add: Airflow 3.1 itself imports requests with ``import airflow``.
    code = (
        "import sys, airflow, airflow.sdk, airflow.triggers.base;"
        "before = set(sys.modules);"
        "import airflow_openai_files.triggers, airflow_openai_files.client.async_transport;"
        "print(sorted(m for m in ('requests', 'requests_toolbelt', 'urllib3', 'tenacity',"
        " 'airflow_openai_files.client.transport')"
        " if m in sys.modules and m not in before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_worker_does_not_import_the_async_transport() -> None:
    """Both hooks come from ``airflow_openai_files.hooks``; httpx's side is loaded only when a trigger polls."""
    code = (
        "import sys;"
        "from airflow_openai_files.hooks import OpenAIFilesAsyncHook, OpenAIFilesHook;"
        "import airflow_openai_files.operators, airflow_openai_files.sensors;"
        "OpenAIFilesAsyncHook('x');"
        "print('airflow_openai_files.client.async_transport' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_every_trigger_is_found_again_by_its_serialized_classpath() -> None:
    import importlib

    import airflow_openai_files.triggers as package
    from airflow_openai_files.triggers.base import OpenAIPollingTrigger

    for name in package.__all__:
        cls = getattr(package, name)
        if cls is OpenAIPollingTrigger:
            continue
        module, _, qualname = cls.classpath().rpartition(".")
        assert module == "airflow_openai_files.triggers"
        assert getattr(importlib.import_module(module), qualname) is cls


def test_triggers_starting_together_build_one_tls_context(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from airflow_openai_files.client import async_transport as _async_hook

    cert, _ = self_signed_certificate(tmp_path)
    builds: list[Any] = []
    original = _async_hook._build_ssl_context

    def counting(verify: Any) -> Any:
        builds.append(verify)
        return original(verify)

    monkeypatch.setattr(_async_hook, "_build_ssl_context", counting)

    async def together() -> list[Any]:
        return await asyncio.gather(*(_async_hook._ssl_context(str(cert)) for _ in range(50)))

    contexts = asyncio.run(together())
    assert builds == [str(cert)], "one CA bundle load for 50 triggers starting at once"
    assert all(context is contexts[0] for context in contexts)
    assert asyncio.run(together())[0] is contexts[0]  # and cached for later triggers
    _async_hook._SSL_CONTEXTS.pop(str(cert), None)
