"""
The worker and the triggerer give the same answer for the same failure.

Each failure kind runs through ``OpenAIFilesHook.get_file`` (requests) and ``OpenAIFilesAsyncHook.get_file``
(httpx) against the same loopback server; both must agree with the table and with each other on whether
the call succeeded, how many attempts reached the server and which waits were chosen (the sleeps are
recorded, not slept; jitter is pinned to zero so a backoff is exactly 0.5 s, then 1 s).
"""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.emulator import Emulator
from airflow_openai_files.exceptions import OpenAIFilesError
from airflow_openai_files.hooks import OpenAIFilesAsyncHook, OpenAIFilesHook
from tests.conftest import set_connection
from tests.support.connections import free_port
from tests.support.hooks import record_waits
from tests.support.tls import (
    CUT_SHORT,
    RESET,
    ScriptedServer,
    json_reply,
    self_signed_certificate,
    tls_server_context,
)

CONN = "parity_conn"
MAX_RETRIES = 2
QUOTA = {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None  # HTTP status of the final error, if any
    attempts: int
    waits: tuple[float, ...]
    message: str = ""

    def decision(self) -> tuple[bool, int | None, int, tuple[float, ...]]:
        return self.ok, self.status, self.attempts, tuple(round(w, 3) for w in self.waits)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("parity-tls"))


@pytest.fixture(autouse=True)
def _no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.0)


def call_sync() -> tuple[bool, int | None, list[float], str]:
    hook = OpenAIFilesHook(openai_conn_id=CONN)
    waits = record_waits(hook)
    try:
        hook.get_file(FILE_ID[0])
        return True, None, waits, ""
    except OpenAIFilesError as err:
        return False, err.http_status, waits, str(err)
    finally:
        hook.close()


def call_async() -> tuple[bool, int | None, list[float], str]:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def scenario() -> tuple[bool, int | None, list[float], str]:
        hook = OpenAIFilesAsyncHook(CONN)
        hook.sleep = record
        try:
            await hook.get_file(FILE_ID[0])
            return True, None, waits, ""
        except OpenAIFilesError as err:
            return False, err.http_status, waits, str(err)

    return asyncio.run(scenario())


FILE_ID = ["file-parity"]  # the id asked for; an emulator case points it at a real file

# A case sets up the failure for one run and returns a function that counts the attempts made since.
Case = Callable[[pytest.MonkeyPatch, Emulator, tuple[Path, Path], list[Any]], Callable[[], int]]


def on_emulator(*faults: dict[str, Any]) -> Case:
    def setup(monkeypatch: pytest.MonkeyPatch, emu: Emulator, _cert: Any, _cleanup: list[Any]) -> Callable[[], int]:
        emu.reset()
        hook = OpenAIFilesHook(openai_conn_id=CONN)
        FILE_ID[0] = hook.upload_file(io.BytesIO(b"parity"), "user_data", filename="parity.txt")["id"]
        hook.close()
        for fault in faults:
            emu.add_fault(method="GET", path="/v1/files/*", **fault)
        before = len(emu.request_log())
        return lambda: sum(1 for method, _, _ in emu.request_log()[before:] if method == "GET")

    return setup


def on_scripted(*replies: bytes, tls: bool = False) -> Case:
    def setup(monkeypatch: pytest.MonkeyPatch, _emu: Emulator, cert: Any, cleanup: list[Any]) -> Callable[[], int]:
        server = ScriptedServer(replies, tls=tls_server_context(cert) if tls else None)
        cleanup.append(server)
        set_connection(monkeypatch, CONN, host=server.base_url, extra={"max_retries": MAX_RETRIES})
        FILE_ID[0] = "file-parity"
        return lambda: server.connections

    return setup


def refused(monkeypatch: pytest.MonkeyPatch, _emu: Emulator, _cert: Any, _cleanup: list[Any]) -> Callable[[], int]:
    set_connection(monkeypatch, CONN, host=f"http://127.0.0.1:{free_port()}/v1", extra={"max_retries": MAX_RETRIES})
    return lambda: -1  # nothing to count at a closed port: the waits tell the attempts


GOOD = json_reply(b'{"id": "file-parity", "object": "file", "status": "processed"}')

# name, case, succeeded, HTTP status of the failure, attempts, waits
# fmt: off
TABLE: list[tuple[str, Case, bool, int | None, int, tuple[float, ...]]] = [
    ("tls-untrusted-certificate", on_scripted(GOOD, tls=True), False, None, 1, ()),
    ("refused-connection", refused, False, None, -1, (0.5, 1.0)),
    ("reset-mid-body", on_scripted(CUT_SHORT + RESET, CUT_SHORT + RESET, GOOD), True, None, 3, (0.5, 1.0)),
    ("reset-mid-body-every-time", on_scripted(CUT_SHORT + RESET), False, None, 3, (0.5, 1.0)),
    ("429-retry-after", on_emulator({"status": 429, "headers": {"retry-after": "1.5"}}), True, None, 2, (1.5,)),
    ("429-retry-after-ms", on_emulator({"status": 429, "headers": {"retry-after-ms": "250"}}), True, None, 2, (0.25,)),
    ("429-hint-too-long", on_emulator({"status": 429, "headers": {"retry-after": "100000"}}), True, None, 2, (0.5,)),
    ("429-insufficient-quota", on_emulator({"status": 429, "error": QUOTA}), False, 429, 1, ()),
    ("503-backoff", on_emulator({"status": 503, "times": 2}), True, None, 3, (0.5, 1.0)),
    ("500-gives-up", on_emulator({"status": 500, "times": 5}), False, 500, 3, (0.5, 1.0)),
    ("500-x-should-retry-false", on_emulator({"status": 500, "headers": {"x-should-retry": "false"}}), False, 500, 1, ()),
    ("400-x-should-retry-true", on_emulator({"status": 400, "headers": {"x-should-retry": "true"}}), True, None, 2, (0.5,)),
    ("400-not-retried", on_emulator({"status": 400}), False, 400, 1, ()),
]
# fmt: on


@pytest.mark.parametrize(
    ("case", "ok", "status", "attempts", "waits"),
    [pytest.param(*row[1:], id=row[0]) for row in TABLE],
)
def test_sync_and_async_hooks_decide_alike(
    case: Case,
    ok: bool,
    status: int | None,
    attempts: int,
    waits: tuple[float, ...],
    openai_files_emulator: Emulator,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_connection(
        monkeypatch,
        CONN,
        host=openai_files_emulator.base_url,
        password=openai_files_emulator.api_key,
        extra={"max_retries": MAX_RETRIES},
    )
    cleanup: list[Any] = []
    outcomes: dict[str, Outcome] = {}
    try:
        for side, call in (("sync", call_sync), ("async", call_async)):
            count = case(monkeypatch, openai_files_emulator, certificate, cleanup)
            got_ok, got_status, got_waits, message = call()
            outcomes[side] = Outcome(got_ok, got_status, count(), tuple(got_waits), message)
    finally:
        for server in cleanup:
            server.close()
    expected = Outcome(ok, status, attempts, waits)
    assert outcomes["sync"].decision() == expected.decision(), outcomes["sync"].message
    assert outcomes["async"].decision() == expected.decision(), outcomes["async"].message
    if not ok and attempts != 1 and waits:
        for outcome in outcomes.values():
            assert "attempt" in outcome.message  # says how many attempts it took


def test_certificate_failure_is_named_on_both_sides(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, openai_files_emulator: Emulator
) -> None:
    cleanup: list[Any] = []
    try:
        for call in (call_sync, call_async):
            count = on_scripted(GOOD, tls=True)(monkeypatch, openai_files_emulator, certificate, cleanup)
            ok, _, waits, message = call()
            assert not ok and waits == [] and count() == 1
            assert "certificate verify failed" in message.lower() or "CERTIFICATE_VERIFY_FAILED" in message
    finally:
        for server in cleanup:
            server.close()


def _wrapped(outer: BaseException, inner: BaseException, *, how: str) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as caught:
            if how == "cause":
                raise outer from caught
            raise outer  # noqa: B904 - the implicit __context__ is what we test
    except BaseException as result:
        return result


def test_should_retry_reads_every_client_and_the_whole_chain() -> None:
    import ssl

    import httpx
    import requests
    import urllib3

    from airflow_openai_files.client.retry import RetryableError, should_retry

    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    heals = [
        requests.exceptions.ConnectionError("refused"),
        requests.exceptions.ReadTimeout("slow"),
        requests.exceptions.ChunkedEncodingError("cut short"),
        urllib3.exceptions.ProtocolError("Connection broken"),
        urllib3.exceptions.ReadTimeoutError(None, "/", "slow"),  # type: ignore[arg-type]
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        ConnectionResetError(104, "reset"),
        RetryableError("503"),
        _wrapped(httpx.ConnectError("eof"), ssl.SSLEOFError(8, "EOF in violation of protocol"), how="cause"),
    ]
    never = [
        requests.exceptions.SSLError("certificate verify failed"),
        requests.exceptions.InvalidURL("no host"),
        httpx.UnsupportedProtocol("ftp://"),
        OpenAIFilesError("HTTP 400"),
        ValueError("a bug"),
        _wrapped(httpx.ConnectError("[SSL] certificate verify failed"), cert, how="cause"),
        _wrapped(httpx.ConnectError("handshake"), cert, how="context"),
        # urllib3 keeps the TLS error in MaxRetryError.reason; requests puts that in args.
        requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", reason=cert)),  # type: ignore[arg-type]
    ]
    assert [should_retry(exc) for exc in heals] == [True] * len(heals)
    assert [should_retry(exc) for exc in never] == [False] * len(never)
