"""Microsoft Entra ID auth: token acquisition, caching and refresh with stand-in credentials (no network),
on the worker and on the triggerer, and the token never in logs, errors, reprs or XCom."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files.client import azure as _azure
from airflow_openai_files.client.azure import AZURE_SCOPE, REFRESH_MARGIN, StaticToken, TokenProvider
from airflow_openai_files.emulator import Emulator
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesRequestError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.operators import OpenAIUploadFileOperator
from airflow_openai_files.triggers import OpenAIFileTrigger
from tests.support.task_helpers import batch_lines, fine_tune_lines, make_context

TOKENS = ("eyJ.entra-token-one.SECRET1", "eyJ.entra-token-two.SECRET2")


class StandInCredential:
    """Hands out the given tokens in turn, each living ``lifetimes[i]`` seconds; records calls and threads."""

    def __init__(
        self, tokens: tuple[str, ...] = TOKENS, lifetimes: tuple[float, ...] = (3600.0,), clock: Any = time.time
    ):
        self.tokens = list(tokens)
        self.lifetimes = lifetimes
        self.clock = clock
        self.calls: list[tuple[str, ...]] = []
        self.threads: list[str] = []
        self.gate: threading.Event | None = None

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.calls.append(scopes)
        self.threads.append(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(5)
        index = min(len(self.calls) - 1, len(self.tokens) - 1)
        lifetime = self.lifetimes[min(len(self.calls) - 1, len(self.lifetimes) - 1)]
        return SimpleNamespace(token=self.tokens[index], expires_on=int(self.clock() + lifetime))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_providers() -> Iterator[None]:
    _azure.forget_providers()
    yield
    _azure.forget_providers()


pytestmark = pytest.mark.openai_files_emulator(flavor="azure", api_key="resource-key-SECRET", ad_tokens=TOKENS)


def use(
    monkeypatch: pytest.MonkeyPatch, emulator: Emulator, conn_id: str = "openai_files_default", **extra: Any
) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", emulator.airflow_connection(**extra))


# -- the provider -----------------------------------------------------------------------------------------


def test_token_is_cached_and_refreshed_before_expiry() -> None:
    clock = FakeClock()
    credential = StandInCredential(clock=clock)
    provider = TokenProvider(credential, clock=clock)
    assert provider.get() == TOKENS[0] and provider.get() == TOKENS[0]
    assert credential.calls == [(AZURE_SCOPE,)]  # one fetch, for the Cognitive Services scope
    clock.now += 3600 - REFRESH_MARGIN - 1  # still outside the margin
    assert provider.get() == TOKENS[0] and len(credential.calls) == 1
    clock.now += 2  # now within REFRESH_MARGIN of expiry: replaced before it lapses
    assert provider.get() == TOKENS[1] and len(credential.calls) == 2
    provider.invalidate()
    assert provider.get() == TOKENS[1] and len(credential.calls) == 3


def test_one_fetch_for_many_threads() -> None:
    credential = StandInCredential()
    credential.gate = threading.Event()
    provider = TokenProvider(credential)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(provider.get())) for _ in range(16)]
    for thread in threads:
        thread.start()
    while not credential.calls:  # the first thread is inside get_token; the others queue on the lock
        time.sleep(0.001)
    credential.gate.set()
    for thread in threads:
        thread.join(10)
    assert results == [TOKENS[0]] * 16 and len(credential.calls) == 1


def test_async_fetch_runs_in_a_thread_and_never_blocks_the_loop() -> None:
    credential = StandInCredential()
    credential.gate = threading.Event()
    provider = TokenProvider(credential)

    async def scenario() -> tuple[str, str]:
        fetch = asyncio.ensure_future(provider.aget())
        while not credential.calls:
            await asyncio.sleep(0.001)  # the loop keeps running while the credential is busy
        credential.gate.set()
        first = await asyncio.wait_for(fetch, 5)
        return first, await provider.aget()

    assert asyncio.run(scenario()) == (TOKENS[0], TOKENS[0])
    assert len(credential.calls) == 1 and credential.threads[0] != threading.main_thread().name


def test_credential_failure_is_an_error_without_secrets() -> None:
    class Broken:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise RuntimeError("ManagedIdentityCredential: no endpoint reachable")

    with pytest.raises(OpenAIFilesError, match=r"Could not get a Microsoft Entra ID token.*no endpoint reachable"):
        TokenProvider(Broken()).get()

    class Empty:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            return SimpleNamespace(token="", expires_on=0)

    with pytest.raises(OpenAIFilesError, match="empty token"):
        TokenProvider(Empty()).get()


def test_reprs_hide_tokens() -> None:
    provider = TokenProvider(StandInCredential())
    provider.get()
    assert "SECRET" not in repr(provider) and "SECRET" not in repr(StaticToken(TOKENS[0]))


def test_default_credential_without_azure_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_azure(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("azure.identity"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_azure)
    with pytest.raises(OpenAIFilesError, match=r"pip install 'airflow-provider-openai-files\[azure\]'"):
        _azure.default_credential()


def test_default_credential_kinds() -> None:
    pytest.importorskip("azure.identity")
    assert type(_azure.default_credential()).__name__ == "DefaultAzureCredential"
    assert type(_azure.default_credential("client-id-1")).__name__ == "ManagedIdentityCredential"


# -- against the emulator ---------------------------------------------------------------------------------


@pytest.mark.parametrize("api_version", ["2024-10-21", ""])
def test_hook_with_a_credential_refreshes_the_token(
    openai_files_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, api_version: str
) -> None:
    use(monkeypatch, openai_files_emulator, use_azure_credential=True, api_version=api_version)
    # The first token expires within the refresh margin: the next request must fetch the second one.
    credential = StandInCredential(lifetimes=(REFRESH_MARGIN - 100, 3600.0))
    hook = OpenAIFilesHook(azure_credential=credential)
    created = hook.upload_file(io.BytesIO(batch_lines(2)), "batch", filename="in.jsonl")
    assert hook.get_file(created["id"])["status"] == "processed"
    assert [f["id"] for f in hook.list_files()] == [created["id"]]
    assert len(credential.calls) == 2  # tok-1 for the upload, tok-2 then cached for the rest
    assert all(status == 201 or status == 200 for _, _, status in openai_files_emulator.request_log())


def test_default_credential_is_used_by_hook_and_trigger(
    openai_files_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    credential = StandInCredential()
    made: list[str | None] = []
    monkeypatch.setattr(_azure, "default_credential", lambda client_id=None: (made.append(client_id), credential)[1])
    use(monkeypatch, openai_files_emulator, use_azure_credential=True, managed_identity_client_id="mi-client-1")
    created = OpenAIFilesHook().upload_file(io.BytesIO(fine_tune_lines()), "fine-tune", filename="t.jsonl")

    async def run() -> list[dict[str, Any]]:
        return [e.payload async for e in OpenAIFileTrigger(created["id"], poll_interval=0.05, timeout=10).run()]

    events = asyncio.run(run())
    assert events[0]["status"] == "success" and events[0]["file"]["status"] == "processed"
    assert made == ["mi-client-1"]  # one provider for the connection, shared by the hook and the trigger
    assert len(credential.calls) == 1


def test_static_token_from_the_connection(openai_files_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, openai_files_emulator, azure_ad_token=TOKENS[1])
    hook = OpenAIFilesHook()
    assert hook.upload_file(io.BytesIO(batch_lines()), "batch", filename="x.jsonl")["status"] == "processed"
    assert "SECRET" not in repr(hook) and "SECRET" not in repr(hook.settings)


def test_rejected_token_fails_fast_without_quoting_it(
    openai_files_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = "eyJ.not-accepted.SECRET3"
    use(monkeypatch, openai_files_emulator, azure_ad_token=bad)
    with pytest.raises(OpenAIFilesRequestError) as info:
        OpenAIFilesHook().list_files().__next__()
    err = info.value
    assert err.http_status == 401 and "Access token is missing, invalid" in str(err)
    assert err.request_id and bad not in str(err) and bad not in repr(err)
    assert [s for _, _, s in openai_files_emulator.request_log()] == [401]  # not retried


def test_token_never_in_logs_or_xcom(
    openai_files_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import airflow.sdk.log

    masked: list[str] = []
    real = airflow.sdk.log.mask_secret
    monkeypatch.setattr(
        airflow.sdk.log, "mask_secret", lambda secret, name=None: (masked.append(secret), real(secret, name))
    )
    credential = StandInCredential()
    monkeypatch.setattr(_azure, "default_credential", lambda client_id=None: credential)
    use(monkeypatch, openai_files_emulator, use_azure_credential=True)
    source = tmp_path / "train.jsonl"
    source.write_bytes(fine_tune_lines())
    with caplog.at_level(logging.DEBUG):
        result = OpenAIUploadFileOperator(task_id="up", file_path=str(source), purpose="fine-tune").execute(
            make_context()
        )
        with pytest.raises(OpenAIFilesRequestError) as info:
            OpenAIFilesHook().get_file("file-missing")
    xcom = json.dumps(result)
    for token in TOKENS[:1]:
        assert token in masked  # handed to Airflow's secrets masker as soon as it was fetched
        assert token not in caplog.text and token not in xcom and token not in str(info.value)
    redact = getattr(airflow.sdk.log, "redact", None)
    if redact is None:  # Airflow 3.1: the masker's module, not re-exported by airflow.sdk.log
        from airflow.sdk._shared.secrets_masker import redact
    redacted = redact(f"Authorization: Bearer {TOKENS[0]}")
    assert TOKENS[0] not in str(redacted)
