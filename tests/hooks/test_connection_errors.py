"""Errors name their connection and the connection value at fault, never a secret; the routes are logged once;
an https:// URL answered in plain HTTP fails on the first try and says how to give http:// (issue 22)."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.client.retry import plain_http_answer, should_retry
from airflow_openai_files.client.settings import parse_settings
from airflow_openai_files.exceptions import OpenAIFilesConfigError, OpenAIFilesError, OpenAIFilesRequestError
from airflow_openai_files.hooks import OpenAIFilesAsyncHook, OpenAIFilesHook
from tests.support.connections import free_port

KEY = "sk-right-key-1234567890"
WRONG = "sk-wrong-key-0987654321"


def connect(monkeypatch: pytest.MonkeyPatch, conn_id: str, **value: Any) -> OpenAIFilesHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "openai_files", **value}))
    hook = OpenAIFilesHook(conn_id, max_retries=2)
    hook.retry_policy.sleep = lambda seconds: pytest.fail(f"retried (slept {seconds}s)")
    return hook


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)

    debug = warning = error = info


def test_the_routes_are_described_for_each_kind_of_connection() -> None:
    openai = parse_settings("plain", host=None, password=KEY, extra={})
    assert openai.describe_routes() == "Connection 'plain': OpenAI API at https://api.openai.com/v1"
    azure = {"flavor": "azure"}
    versioned = parse_settings(
        "az", host="r.openai.azure.com", password=KEY, extra={**azure, "api_version": "2024-10-21"}
    )
    assert "versioned /openai routes with api-version 2024-10-21" in versioned.describe_routes()
    for extra in (azure, {**azure, "api_version": ""}):  # absent and empty mean the same: the v1 routes
        v1 = parse_settings("az", host="r.openai.azure.com", password=KEY, extra=extra)
        assert v1.base_url == "https://r.openai.azure.com/openai/v1"
        assert "/openai/v1 routes (no 'api_version' extra" in v1.describe_routes()
        assert KEY not in v1.describe_routes()


@pytest.mark.openai_files_emulator(api_key=[KEY], flavor="azure")
def test_the_hook_logs_its_routes_once(openai_files_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = connect(
        monkeypatch, "azure_v1", host=openai_files_emulator.endpoint, password=KEY, extra={"flavor": "azure"}
    )
    hook._log = log = Lines()  # type: ignore[assignment]
    hook.list_files()
    hook.get_conn()
    list(hook.list_files())
    routes = [line for line in log.lines if "routes" in line]
    assert routes == [
        f"Connection 'azure_v1': Azure OpenAI at {openai_files_emulator.endpoint}, /openai/v1 routes (no 'api_version'"
        " extra: the v1 API, which takes no api-version)"
    ]


@pytest.mark.openai_files_emulator(api_key=[KEY])
def test_a_refused_key_names_the_connection_and_the_field_not_the_key(
    openai_files_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = connect(monkeypatch, "team_b", host=openai_files_emulator.base_url, password=WRONG)
    with pytest.raises(OpenAIFilesRequestError) as info:
        list(hook.list_files())
    message = str(info.value)
    assert info.value.http_status == 401
    assert "the service refused the API key in its password field of connection 'team_b'" in message
    assert WRONG not in message and KEY not in message


@pytest.mark.openai_files_emulator(api_key=[KEY], flavor="azure")
def test_an_unsupported_api_version_names_the_connection_and_the_value(
    openai_files_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = connect(
        monkeypatch,
        "az_old",
        host=openai_files_emulator.endpoint,
        password=KEY,
        extra={"flavor": "azure", "api_version": "2023-01-01"},
    )
    with pytest.raises(OpenAIFilesRequestError) as info:
        list(hook.list_files())
    message = str(info.value)
    assert info.value.http_status == 400 and "API version not supported" in message
    assert "connection 'az_old' sets the extra 'api_version' to '2023-01-01'" in message
    assert "remove the extra to use the /openai/v1 routes" in message
    assert KEY not in message


def test_an_unreachable_host_names_the_connection_and_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    hook = connect(monkeypatch, "nowhere", host=f"http://127.0.0.1:{port}", password=KEY)
    hook.retry_policy.sleep = lambda seconds: None  # a refused connection heals: retried, then named
    with pytest.raises(OpenAIFilesError) as info:
        list(hook.list_files())
    assert not isinstance(info.value, AirflowFailException)  # Airflow's own retries may still act
    assert f"[connection 'nowhere' points at http://127.0.0.1:{port}]" in str(info.value)


@pytest.mark.openai_files_emulator(api_key=[KEY])
def test_https_assumed_for_a_plain_http_server_fails_at_once_and_says_how_to_fix_it(
    openai_files_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = openai_files_emulator.base_url.removeprefix("http://")  # 127.0.0.1:PORT/v1, no scheme
    hook = connect(monkeypatch, "local", host=host, password=KEY)
    with pytest.raises(OpenAIFilesConfigError) as info:  # an AirflowFailException: no task retry either
        list(hook.list_files())
    message = str(info.value)
    assert "after 1 attempt(s)" in message
    assert "its host has no scheme, so https:// was assumed" in message
    assert f"set the host of connection 'local' to {openai_files_emulator.base_url}" in message
    assert info.value.field == "host"
    assert openai_files_emulator.files() == []

    async def poll() -> None:
        async with OpenAIFilesAsyncHook("local") as async_hook:
            await async_hook.get_file("file-abc")

    with pytest.raises(OpenAIFilesConfigError, match="https:// was assumed") as async_info:
        asyncio.run(poll())
    assert f"set the host of connection 'local' to {openai_files_emulator.base_url}" in str(async_info.value)


@pytest.mark.openai_files_emulator(api_key=[KEY])
def test_an_explicit_https_url_to_a_plain_http_server_says_so(
    openai_files_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = connect(
        monkeypatch, "local_tls", host=openai_files_emulator.base_url.replace("http://", "https://"), password=KEY
    )
    with pytest.raises(OpenAIFilesConfigError, match="its host says https://"):
        list(hook.list_files())


def test_wrong_version_number_is_recognised_and_not_retried() -> None:
    wrong = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    wrapped = ConnectionError("connect failed")
    wrapped.__cause__ = wrong
    assert plain_http_answer(wrapped) and not should_retry(wrapped)
    other = ssl.SSLError(1, "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] handshake failure")
    assert not plain_http_answer(other)
